"""The `tuning:` section of params.yaml: one Optuna study per suite and method (docs/tuning.md).

    tuning:
      quick:
        asymfusion:
          experiment: quick-asymfusion        # the base recipe; every trial overrides the keys under `space`
          metric: val_ensemble_miou           # a key of the trainer's per-epoch history
          direction: maximize
          space:
            optimiser.lr_encoder: {type: float, low: 1.0e-3, high: 0.1, log: true}
            model.fusion.stages: {type: categorical, choices: [[1, 2, 3, 4], [3, 4]]}

Each `space` key is a dotted path into the experiment's own schema. `check_tuning` verifies that every path exists
and that the experiment still validates through the normal resolution at every range end and every choice, so a bad
range fails before any trial starts (exit 2, naming the key). This module imports nothing from
`asymfusion.benchmark.config` at import time, so that module can import these models for its schema.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, ValidationError, model_validator

from asymfusion.datasets.config import Strict, check_data_against_dataset

PLACEMENT_KEYS = {"train": ("device", "threads", "channels_last", "amp"), "data": ("num_workers", "val_batch_size")}
METRIC_RE = re.compile(r"^(train_loss|val_[A-Za-z0-9]+_[a-z0-9_]+)$")


class FloatParam(Strict):
    """A float drawn from [low, high], optionally on a log scale or a grid of `step`."""

    type: Literal["float"]
    low: float = Field(description="lowest value (inclusive)")
    high: float = Field(description="highest value (inclusive)")
    log: bool = Field(False, description="sample on a log scale (needs low > 0)")
    step: float | None = Field(None, gt=0, description="grid spacing from low (not with log)")

    @model_validator(mode="after")
    def _range(self) -> "FloatParam":
        _check_range(self.low, self.high, self.log, self.step is not None)
        return self


class IntParam(Strict):
    """An integer drawn from [low, high], optionally on a log scale or a grid of `step`."""

    type: Literal["int"]
    low: int = Field(description="lowest value (inclusive)")
    high: int = Field(description="highest value (inclusive)")
    log: bool = Field(False, description="sample on a log scale (needs low >= 1)")
    step: int = Field(1, ge=1, description="grid spacing from low (1 with log)")

    @model_validator(mode="after")
    def _range(self) -> "IntParam":
        _check_range(self.low, self.high, self.log, self.step != 1)
        return self


class CategoricalParam(Strict):
    """One of a list of values; a value may itself be a list (e.g. fusion stages [3, 4])."""

    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1, description="the values to choose from")

    @model_validator(mode="after")
    def _distinct(self) -> "CategoricalParam":
        keys = [json.dumps(c, sort_keys=True) for c in self.choices]
        if len(set(keys)) != len(keys):
            raise ValueError(f"choices must be distinct, got {self.choices}")
        return self

    def encoded(self) -> list[Any]:
        """Choices as Optuna stores them: scalars as they are; if any choice is a list or mapping, all as JSON."""
        if all(c is None or isinstance(c, (bool, int, float, str)) for c in self.choices):
            return list(self.choices)
        return [json.dumps(c) for c in self.choices]

    def encode(self, value: Any) -> Any:
        return json.dumps(value) if self.encoded() != list(self.choices) else value

    def decode(self, value: Any) -> Any:
        return json.loads(value) if self.encoded() != list(self.choices) else value


ParamSpec = Annotated[Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="type")]


class SamplerConfig(Strict):
    n_startup_trials: int = Field(10, ge=0, description="random trials before TPE starts modelling the space")


class PrunerConfig(Strict):
    name: Literal["median", "none"] = Field("median", description="MedianPruner, or never prune")
    n_startup_trials: int = Field(5, ge=0, description="finished trials before pruning starts")
    n_warmup_steps: int = Field(0, ge=0, description="epochs a trial always runs before it can be pruned")
    interval_steps: int = Field(1, ge=1, description="check for pruning every N epochs")


class HeartbeatConfig(Strict):
    interval: int = Field(60, ge=1, description="seconds between a running trial's heartbeats (RDB storages)")
    grace_period: int = Field(180, ge=1, description="seconds without a heartbeat before a trial counts as dead")
    max_retry: int = Field(3, ge=0, description="how often a dead trial is re-queued with the same parameters")

    @model_validator(mode="after")
    def _grace_exceeds_interval(self) -> "HeartbeatConfig":
        if self.grace_period <= self.interval:
            raise ValueError(f"grace_period ({self.grace_period}) must exceed interval ({self.interval})")
        return self


class TuningConfig(Strict):
    """One study: a base experiment, the keys to search and how to judge a trial."""

    experiment: str | None = Field(None, description="base experiment (default: <suite>-<method>)")
    metric: str = Field("val_ensemble_miou", description="key of the trainer's per-epoch history to optimise, "
                        "e.g. val_ensemble_miou, val_ensemble_l1, train_loss; a trial scores its best epoch")
    direction: Literal["maximize", "minimize"] = Field("maximize", description="whether a higher metric is better")
    trials: int = Field(20, ge=1, description="finished (complete + pruned) trials to reach; --trials overrides")
    epochs: int | None = Field(None, ge=1, description="epochs per trial (default: the experiment's train.epochs); "
                               "the tuned experiment keeps the experiment's own epochs")
    seed: int = Field(0, ge=0, description="TPE sampler seed and the training seed of every trial")
    sampler: SamplerConfig = SamplerConfig()
    pruner: PrunerConfig = PrunerConfig()
    heartbeat: HeartbeatConfig = HeartbeatConfig()
    space: dict[str, ParamSpec] = Field(min_length=1, description="dotted experiment key -> distribution")
    enqueue: list[dict[str, Any]] = Field([], description="configurations to try first (e.g. the current recipe), "
                                          "space key -> value; queued once, when the study is created")

    @model_validator(mode="after")
    def _consistent(self) -> "TuningConfig":
        if not METRIC_RE.match(self.metric):
            raise ValueError(f"metric {self.metric!r} is not a history key: expected train_loss or "
                             "val_<output>_<metric>, e.g. val_ensemble_miou")
        keys = sorted(self.space)
        for a, b in zip(keys, keys[1:]):
            if b.startswith(a + "."):
                raise ValueError(f"space keys {a!r} and {b!r} overlap")
        for i, point in enumerate(self.enqueue):
            for key, value in point.items():
                if key not in self.space:
                    raise ValueError(f"enqueue[{i}]: {key!r} is not a space key; allowed: {', '.join(self.space)}")
                if not _in_space(self.space[key], value):
                    raise ValueError(f"enqueue[{i}]: {key}={value!r} lies outside its space")
        return self

    def spec_hash_payload(self) -> dict[str, Any]:
        """What a study's trials depend on; a stored study with different values cannot be continued."""
        return self.model_dump(mode="json", include={"experiment", "metric", "direction", "epochs", "seed", "space"})


def _check_range(low: float, high: float, log: bool, stepped: bool) -> None:
    if not low < high:
        raise ValueError(f"low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise ValueError(f"log scale needs low > 0 (got {low})")
    if log and stepped:
        raise ValueError("step and log cannot be combined")


def _in_space(spec: FloatParam | IntParam | CategoricalParam, value: Any) -> bool:
    if isinstance(spec, CategoricalParam):
        return any(json.dumps(value, sort_keys=True) == json.dumps(c, sort_keys=True) for c in spec.choices)
    if isinstance(spec, IntParam) and not (isinstance(value, int) and not isinstance(value, bool)):
        return False
    return isinstance(value, (int, float)) and not isinstance(value, bool) and spec.low <= value <= spec.high


# ---------------------------------------------------------------------------------------------------------------------
# Dotted paths into an experiment


def set_dotted(raw: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the experiment mapping `raw` with every `a.b.c: value` applied (missing levels created)."""
    out = copy.deepcopy(raw)
    for key, value in values.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = copy.deepcopy(value)
    return out


def check_path(key: str, method: str) -> None:
    """Raise ValueError unless `key` names a field of the experiment schema (model keys: ModelConfig, and the
    method's own fusion options under `model.fusion`; below a free-form mapping such as model.backbone_kwargs any
    key is accepted)."""
    from asymfusion.benchmark.config import ExperimentConfig
    from asymfusion.models import ModelConfig
    from asymfusion.models.fusion.registry import get_fusion

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
    import types

    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(args) > 1 and len(models) == len(args):
            return types.SimpleNamespace(model_fields={k: f for m in models for k, f in m.model_fields.items()})
        annotation = args[0] if len(args) == 1 else None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


# ---------------------------------------------------------------------------------------------------------------------
# Validation against the rest of params.yaml


def base_experiment(params: Any, suite: str, method: str, spec: TuningConfig) -> str:
    return spec.experiment or f"{suite}-{method}"


def experiment_mapping(params: Any, name: str) -> dict[str, Any]:
    """The experiment as the user wrote it (unset defaults left out), ready for overrides."""
    return params.experiments[name].model_dump(mode="json", exclude_unset=True)


def validate_experiment(params: Any, name: str, raw: dict[str, Any], where: str) -> Any:
    """Params with experiment `name` replaced by `raw`, validated and resolvable; ConfigError prefixed by `where`."""
    from asymfusion.benchmark.config import ConfigError, ExperimentConfig, format_validation_error, resolve_run

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
    from asymfusion.benchmark.config import ConfigError

    prefix = f"{path or params.source or 'params.yaml'}"
    for suite, studies in (getattr(params, "tuning", None) or {}).items():
        if suite not in params.suites:
            raise ConfigError(f"{prefix}: tuning.{suite}: {suite!r} is not a suite; "
                              f"allowed: {', '.join(params.suites)}")
        for method, spec in studies.items():
            check_study(params, suite, method, spec, prefix)


def check_study(params: Any, suite: str, method: str, spec: TuningConfig, prefix: str) -> None:
    from asymfusion.benchmark.config import ConfigError

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


def spec_hash(params: Any, suite: str, method: str, spec: TuningConfig) -> str:
    """What the stored trials depend on: the search settings and the base recipe (minus where it runs)."""
    recipe = experiment_mapping(params, base_experiment(params, suite, method, spec))
    for section, keys in PLACEMENT_KEYS.items():
        for key in keys:
            recipe.get(section, {}).pop(key, None)
    recipe.pop("evaluate", None), recipe.pop("seeds", None)
    payload = {"spec": spec.spec_hash_payload(), "experiment": recipe}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def encode_params(spec: TuningConfig, values: dict[str, Any]) -> dict[str, Any]:
    """Space values as Optuna stores them (list-valued choices as JSON strings)."""
    return {k: (spec.space[k].encode(v) if isinstance(spec.space[k], CategoricalParam) else v)
            for k, v in values.items()}


def decode_params(spec: TuningConfig, values: dict[str, Any]) -> dict[str, Any]:
    """Optuna's stored values back to params.yaml values."""
    return {k: (spec.space[k].decode(v) if isinstance(spec.space.get(k), CategoricalParam) else v)
            for k, v in values.items()}
