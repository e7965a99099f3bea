"""Loading params.yaml: YAML, `base:` inheritance, the schema, then every cross-reference and every experiment's
resolution, so that all errors surface before any work starts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import ValidationError

from asymfusion.benchmark.config.inherit import InheritanceError, resolve_experiments
from asymfusion.benchmark.config.messages import format_validation_error
from asymfusion.benchmark.config.rehearsal import RehearsalConfig, derive_rehearsal
from asymfusion.benchmark.config.runs import _bad, _build_model_config
from asymfusion.benchmark.config.schema import Params
from asymfusion.benchmark.config.tuning_checks import check_tuning
from asymfusion.benchmark.errors import ConfigError
from asymfusion.benchmark.tasks import TASKS, get_task
from asymfusion.datasets.config import check_data_against_dataset

if TYPE_CHECKING:
    from asymfusion.benchmark.config.overrides import Overrides


class DuplicateKey(ValueError):
    pass


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that rejects a key given twice in one mapping (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKey(f"line {line}: key {key!r} given twice in one mapping (first on line {seen[key]}); "
                                   "YAML would silently keep the last value")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_params(path: str | Path = "params.yaml", overrides: "Overrides | None" = None) -> Params:
    """Parse and validate params.yaml, including every experiment's resolution (so errors surface at once);
    `overrides`: one experiment's `--set` edits, applied after its bases merge (benchmark/config/overrides.py)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        raw = yaml.load(path.read_text(), Loader=UniqueKeyLoader)
    except DuplicateKey as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(raw).__name__}")
    # Top-level keys starting with "_" are not sections (they used to hold YAML anchors, which `dvc exp run -S`
    # expands: use `recipes:` and `base:` instead, benchmark/config/inherit.py).
    raw = {k: v for k, v in raw.items() if not str(k).startswith("_")}
    try:
        raw = resolve_experiments(raw, str(path))
    except InheritanceError as exc:
        raise ConfigError(str(exc)) from None
    if overrides is not None:
        from asymfusion.benchmark.config.overrides import apply_overrides

        try:
            raw = apply_overrides(raw, overrides, str(path))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    try:
        raw = derive_rehearsal(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, RehearsalConfig, f"{path}: rehearsal")) from None
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, Params, str(path))) from None
    params = params.model_copy(update={"source": path, "overrides": {overrides.experiment: list(overrides.sets)}
                                       if overrides is not None else {}})
    for name, exp in params.experiments.items():
        if exp.suite not in params.suites:
            raise ConfigError(_bad(path, f"experiments.{name}.suite", exp.suite, list(params.suites)))
        if exp.data.dataset not in params.datasets:
            raise ConfigError(_bad(path, f"experiments.{name}.data.dataset", exp.data.dataset, list(params.datasets)))
        try:
            check_data_against_dataset(exp.data, params.datasets[exp.data.dataset])
        except ValueError as exc:
            raise ConfigError(f"{path}: experiments.{name}.data: {exc}") from None
        _build_model_config(params, name, path)
        _check_evaluation(params, name, path)
    _check_tables_and_claims(params, path)
    check_tuning(params, path)
    return params


def _tta_tasks() -> list[str]:
    return [name for name in TASKS.names() if get_task(name).test_time_augmentation]


def _check_evaluation(params: Params, name: str, path: Path) -> None:
    exp = params.experiments[name]
    task = params.datasets[exp.data.dataset].task
    if not get_task(task).test_time_augmentation and (exp.evaluate.flip or exp.evaluate.scales != [1.0]):
        raise ConfigError(f"{path}: experiments.{name}.evaluate: flip / scales (test-time augmentation) apply to "
                          f"tasks that average class probabilities ({', '.join(_tta_tasks())}), not {task}; "
                          "remove them")


def _check_tables_and_claims(params: Params, path: Path) -> None:
    for suite in params.perf:
        if suite not in params.suites:
            raise ConfigError(_bad(path, f"perf.{suite}", suite, list(params.suites)))
    for section in ("tables", "claims"):
        for suite, entries in getattr(params, section).items():
            if suite not in params.suites:
                raise ConfigError(_bad(path, f"{section}.{suite}", suite, list(params.suites)))
            suite_experiments = [n for n, e in params.experiments.items() if e.suite == suite]
            for i, entry in enumerate(entries):
                names = list(entry.rows) if section == "tables" else [*entry.better, *entry.worse]
                for name in names:
                    if name not in suite_experiments:
                        raise ConfigError(_bad(path, f"{section}.{suite}.{i}", name, suite_experiments))
