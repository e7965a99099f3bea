"""`--set key=value` on `train`, `evaluate` and `tune`: quick tries of one experiment without editing params.yaml.

Each `key` is a dotted path into the run's experiment after its `base:` chain is merged (`optimiser.lr_decoder`,
`model.fusion.stages`, `train.epochs`); `value` is read as YAML (`0.01`, `[1, 3]`, `true`, `sgd`). The edited
experiment is validated by the same schema as params.yaml, so a wrong key or value exits 2 naming it. A try never
writes into a suite's results or checkpoints: its outputs go to `<results>/tries/` and `<checkpoints>/tries/`
(`--into-suite` writes them where the suite's own would go), and every metrics JSON it writes lists the overrides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import yaml

__all__ = ["Overrides", "apply_overrides", "parse_set"]

TRIES = "tries"


def parse_set(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a", "b", "c"], the YAML value); ValueError naming the problem."""
    key, sep, value = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ValueError(f"--set {text!r}: expected KEY=VALUE with a dotted KEY, e.g. optimiser.lr_decoder=0.01")
    try:
        parsed = yaml.safe_load(value) if value else ""
    except yaml.YAMLError as exc:
        raise ValueError(f"--set {text!r}: the value is not valid YAML ({exc.problem})") from None
    return key.split("."), parsed


@dataclass(frozen=True)
class Overrides:
    """The `--set` edits of one experiment, and whether their outputs may go into the suite's folders."""

    experiment: str
    sets: tuple[str, ...]
    into_suite: bool = False
    keys: tuple[tuple[tuple[str, ...], Any], ...] = field(default=(), compare=False)

    @classmethod
    def for_run(cls, run: str, sets: list[str], into_suite: bool = False) -> "Overrides":
        """For `run` (an experiment name or `<experiment>-s<seed>`); the experiment is checked when applied."""
        match = re.fullmatch(r"(.+)-s\d+", run)
        return cls(match.group(1) if match else run, tuple(sets), into_suite,
                   tuple((tuple(k), v) for k, v in map(parse_set, sets)))


def apply_overrides(raw: dict[str, Any], overrides: Overrides, source: str) -> dict[str, Any]:
    """`raw` (bases merged) with the experiment edited and, unless `into_suite`, its suite's results and the
    checkpoints redirected under `tries/`. ValueError when the experiment does not exist."""
    experiments = raw.get("experiments") or {}
    name = overrides.experiment
    if name not in experiments:
        raise ValueError(f"{source}: --set: no experiment {name!r} (`asymfusion config list` lists them)")
    experiment = experiments[name]
    for keys, value in overrides.keys:
        node = experiment
        for i, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ValueError(f"{source}: --set {'.'.join(keys)}: experiments.{name}.{'.'.join(keys[:i + 1])} is "
                                 f"{child!r}, not a section")
            node = child
        node[keys[-1]] = value
    if not overrides.into_suite:
        suite = experiment.get("suite")
        suites = raw.get("suites") or {}
        if suite in suites and isinstance(suites[suite], dict) and suites[suite].get("results"):
            results = PurePosixPath(suites[suite]["results"])
            suites[suite]["results"] = str(results.parent / TRIES / results.name)
        paths = raw.setdefault("paths", {})
        paths["checkpoints"] = str(PurePosixPath(paths.get("checkpoints", "checkpoints")) / TRIES)
    return raw
