"""The `tuning:` section checked against the rest of params.yaml: space paths exist in the experiment schema, and
the base experiment validates and resolves at every range end and every choice."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from asymfusion.benchmark.config.messages import format_validation_error
from asymfusion.benchmark.config.runs import resolve_run
from asymfusion.benchmark.config.schema import ExperimentConfig
from asymfusion.benchmark.config.tuning import (
    CategoricalParam,
    TuningConfig,
    base_experiment,
    experiment_mapping,
    set_dotted,
)
from asymfusion.benchmark.errors import ConfigError
from asymfusion.datasets.config import check_data_against_dataset
from asymfusion.models.config import ModelConfig
from asymfusion.models.fusion.registry import get_fusion


def check_path(key: str, method: str) -> None:
    """Raise ValueError unless `key` names a field of the experiment schema (model keys: ModelConfig, and the
    method's own fusion options under `model.fusion`; below a free-form mapping such as model.backbone_kwargs any
    key is accepted)."""
    parts = key.split(".")
    node: Any = ExperimentConfig
    for i, part in enumerate(parts):
        if node is _FREE:
            return
        path = ".".join(parts[: i + 1])
        if node is None:
            raise ValueError(f"{'.'.join(parts[:i])} is a value; it has no keys below it")
        fields = node.model_fields
        if part not in fields:
            where = ".".join(parts[:i]) or "an experiment"
            raise ValueError(f"{part!r} is not a key of {where}; allowed: {', '.join(fields)}")
        if path == "model":
            node = ModelConfig
        elif path == "model.fusion":
            node = get_fusion(method).Options
        else:
            annotation = fields[part].annotation
            node = _model_of(annotation) or (_FREE if typing.get_origin(annotation) is dict else None)


_FREE = object()  # marks a free-form mapping in check_path


def _model_of(annotation: Any) -> Any:
    """The model below a field; for a union of models (e.g. model.decoder) one whose keys are all members' keys
    (the trial config is validated against the chosen member afterwards)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(args) > 1 and len(models) == len(args):
            return types.SimpleNamespace(model_fields={k: f for m in models for k, f in m.model_fields.items()})
        annotation = args[0] if len(args) == 1 else None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def validate_experiment(params: Any, name: str, raw: dict[str, Any], where: str) -> Any:
    """Params with experiment `name` replaced by `raw`, validated and resolvable; ConfigError prefixed by `where`."""
    try:
        exp = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, ExperimentConfig, where)) from None
    try:
        check_data_against_dataset(exp.data, params.datasets[exp.data.dataset])
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{where}: data: {exc}") from None
    new = params.model_copy(update={"experiments": {**params.experiments, name: exp}})
    try:
        resolve_run(new, name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {str(exc).split(': ', 1)[-1]}") from None
    return new


def check_tuning(params: Any, path: Path | str | None = None) -> None:
    """Every study of the `tuning:` section: suite, base experiment, space paths, and the experiment re-validated
    at every range end and every choice. Raises ConfigError naming `tuning.<suite>.<method>.space.<key>`."""
    prefix = f"{path or params.source or 'params.yaml'}"
    for suite, studies in (getattr(params, "tuning", None) or {}).items():
        if suite not in params.suites:
            raise ConfigError(f"{prefix}: tuning.{suite}: {suite!r} is not a suite; "
                              f"allowed: {', '.join(params.suites)}")
        for method, spec in studies.items():
            check_study(params, suite, method, spec, prefix)


def check_study(params: Any, suite: str, method: str, spec: TuningConfig, prefix: str) -> None:
    key = f"tuning.{suite}.{method}"
    name = base_experiment(params, suite, method, spec)
    if name not in params.experiments:
        raise ConfigError(f"{prefix}: {key}.experiment: {name!r} is not an experiment; allowed: "
                          f"{', '.join(params.experiments) or '(none)'}")
    if params.experiments[name].suite != suite:
        raise ConfigError(f"{prefix}: {key}.experiment: {name!r} belongs to suite "
                          f"{params.experiments[name].suite!r}, not {suite!r}")
    raw = experiment_mapping(params, name)
    fusion_method = raw["model"].get("method", "")
    if spec.epochs is not None:
        raw = set_dotted(raw, {"train.epochs": spec.epochs})
    validate_experiment(params, name, raw, f"{prefix}: {key}.epochs={spec.epochs}")
    for path, dist in spec.space.items():
        where = f"{prefix}: {key}.space.{path}"
        try:
            check_path(path, fusion_method)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        ends = dist.choices if isinstance(dist, CategoricalParam) else [dist.low, dist.high]
        for value in ends:
            validate_experiment(params, name, set_dotted(raw, {path: value}), f"{where}={value!r}")


