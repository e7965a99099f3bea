"""Runs: `<experiment>-s<seed>` names, and their resolution into a RunConfig with the model section completed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from asymfusion.benchmark.config.messages import format_validation_error
from asymfusion.benchmark.config.schema import Params, RunConfig
from asymfusion.benchmark.errors import ConfigError
from asymfusion.benchmark.tasks import get_task
from asymfusion.datasets.tasks import data_task
from asymfusion.models.config import ModelConfig

RUN_RE = re.compile(r"^(?P<experiment>.+)-s(?P<seed>\d+)$")


def list_runs(params: Params, suite: str | None = None) -> list[str]:
    """Every run name (`<experiment>-s<seed>`), optionally of one suite."""
    runs = []
    for name, exp in params.experiments.items():
        if suite is None or exp.suite == suite:
            runs += [f"{name}-s{seed}" for seed in (exp.seeds if exp.seeds is not None else params.suites[exp.suite].seeds)]
    return runs


def runs_of(params: Params, name: str) -> list[str]:
    """An experiment name -> all its runs (one per seed); a run name -> itself."""
    if name in params.experiments:
        return [r for r in list_runs(params) if r.rsplit("-s", 1)[0] == name]
    return [resolve_run(params, name).run]


def resolve_run(params: Params, run: str) -> RunConfig:
    """`quick-asymfusion-s1` -> RunConfig; a bare experiment name means its first seed."""
    match = RUN_RE.match(run)
    if run in params.experiments:
        experiment, seed = run, None
    elif match and match["experiment"] in params.experiments:
        experiment, seed = match["experiment"], int(match["seed"])
    else:
        known = ", ".join(list_runs(params)) or "(none)"
        raise ConfigError(f"unknown run {run!r}: expected <experiment>-s<seed>, one of: {known}")
    exp = params.experiments[experiment]
    suite = params.suites[exp.suite]
    task = params.datasets[exp.data.dataset].task
    if exp.evaluate.corruptions and not data_task(task).corruptible:
        raise ConfigError(f"{params.source}: experiments.{experiment}.evaluate.corruptions: the {task} loader applies "
                          "no corruptions (segmentation does); remove the key")
    for spec in exp.evaluate.corruptions:
        modality = spec.split("/")[0].split("@")[0]
        if modality not in exp.data.modalities:
            raise ConfigError(f"{params.source}: experiments.{experiment}.evaluate.corruptions: {spec!r} corrupts "
                              f"{modality!r}, which is not an input of this experiment ({exp.data.modalities})")
    seeds = exp.seeds if exp.seeds is not None else suite.seeds
    if seed is None:
        seed = seeds[0]
    elif seed not in seeds:
        raise ConfigError(f"run {run!r}: seed {seed} is not among the experiment's seeds {seeds}")
    return RunConfig(
        run=f"{experiment}-s{seed}",
        experiment=experiment,
        seed=seed,
        suite=exp.suite,
        results_dir=Path(suite.results),
        checkpoint_dir=Path(params.paths.checkpoints) / exp.suite / f"{experiment}-s{seed}",
        inception_weights=params.data_path(params.paths.inception_weights),
        dataset_name=exp.data.dataset,
        dataset=params.datasets[exp.data.dataset],
        dataset_root=params.dataset_root(exp.data.dataset),
        hha_root=params.hha_root(exp.data.dataset),
        overrides=params.overrides.get(experiment, []),
        data=exp.data,
        model=_build_model_config(params, experiment, params.source),
        optimiser=exp.optimiser,
        train=exp.train,
        evaluate=exp.evaluate,
    )


def _build_model_config(params: Params, experiment: str, path: Path | None) -> Any:
    """The model section plus the keys the data decides (task, modalities, channels, classes)."""
    exp = params.experiments[experiment]
    dataset = params.datasets[exp.data.dataset]
    derived = {"task", "modalities", "in_channels", "num_classes", "out_channels"}
    clash = derived & set(exp.model)
    where = f"experiments.{experiment}.model"
    if clash:
        raise ConfigError(
            f"{path}: {where}: {', '.join(sorted(clash))} are derived from the data section; remove them"
        )
    channels = data_task(dataset.task).channels(exp.data)
    section = dict(exp.model)
    section.update(
        task=dataset.task,
        modalities=list(exp.data.modalities),
        in_channels={m: channels[m] for m in exp.data.modalities},
    )
    section.update(get_task(dataset.task).model_fields(dataset, exp.data, channels))
    try:
        return ModelConfig.model_validate(section)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, ModelConfig, f"{path}: {where}")) from None


def _bad(path: Path, key: str, value: Any, allowed: list[str]) -> str:
    return f"{path}: {key}: {value!r} is not defined; allowed: {', '.join(allowed) or '(none)'}"
