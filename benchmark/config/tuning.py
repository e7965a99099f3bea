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
from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator

from asymfusion.datasets.config import Strict

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


# ---------------------------------------------------------------------------------------------------------------------
# Validation against the rest of params.yaml


def base_experiment(params: Any, suite: str, method: str, spec: TuningConfig) -> str:
    return spec.experiment or f"{suite}-{method}"


def experiment_mapping(params: Any, name: str) -> dict[str, Any]:
    """The experiment as the user wrote it (unset defaults left out), ready for overrides."""
    return params.experiments[name].model_dump(mode="json", exclude_unset=True)


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
