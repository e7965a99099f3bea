"""What each DVC stage acts on, written to results/specs/<stage>.json by the `specs` stage (see pipeline.py).

A spec holds the resolved configuration a stage reads (for a train stage: exactly what `train_hash` covers, per run;
for an evaluate stage: each run's whole resolved configuration) and the sha256 of every package file the stage
executes. DVC compares these files by content, so a stage reruns exactly when something it uses changed, and
`git diff results/specs/` says what that was.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from asymfusion.benchmark.engine.codedeps import fingerprint, stage_code
from asymfusion.benchmark.config import ConfigError, Params, resolve_run
from asymfusion.benchmark.config.rehearsal import PREFIX as REHEARSAL_PREFIX
from asymfusion.benchmark.perf.select import select_experiments, suite_settings
from asymfusion.benchmark.pipeline.stages import (
    SPECS_DIR,
    build_pipeline,
    experiment_runs,
    hha_stages,
    rehearsal_stages,
    render_pipeline,
    spec_path,
)
from asymfusion.datasets.files import atomic_write

SCHEMA_VERSION = 1


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json") if hasattr(model, "model_dump") else model


def _spec(verb: str, config: Any, methods: list[str] = ()) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "verb": verb, "config": config,
            "code": fingerprint(stage_code(verb, sorted(set(methods))))}


def _train_config(params: Params, name: str) -> dict[str, Any]:
    out = {}
    for run in experiment_runs(params, name):
        cfg = resolve_run(params, run)
        out[run] = {"train_hash": cfg.train_hash(), **{k: v for k, v in cfg.to_dict().items() if k != "evaluate"}}
    return out


def _suite_experiments(params: Params, suite: str) -> list[str]:
    return [n for n, e in params.experiments.items() if e.suite == suite]


def stage_specs(params: Params) -> dict[str, dict[str, Any]]:
    """stage name -> spec, for every stage of the generated pipeline except `specs` itself."""
    specs: dict[str, dict[str, Any]] = {}
    studies = {f"tune-{suite}-{method}": study for suite, by_method in params.tuning.items()
               for method, study in by_method.items()}
    rehearsal = rehearsal_stages(params)
    for name in build_pipeline(params)["stages"]:
        kind, _, rest = name.partition("-")
        if name == "specs":
            continue
        if name in rehearsal:  # stand-ins, and their fetch and prepare: the rehearsal settings and the command
            datasets = {n: _dump(d) for n, d in params.datasets.items() if n.startswith(REHEARSAL_PREFIX)}
            specs[name] = _spec(kind, {"rehearsal": _dump(params.rehearsal), "cmd": rehearsal[name]["cmd"],
                                       "datasets": datasets})
        elif kind == "hha":  # the dataset it encodes and the command (camera, depth scale, folders)
            hha = hha_stages(params)[name]
            specs[name] = _spec("prepare-hha", {"dataset": _dump(params.datasets[rest]), "cmd": hha["cmd"]})
        elif name == "prepare-synthetic":
            specs[name] = _spec("prepare-synthetic", _dump(params.synthetic))
        elif kind == "fetch":
            specs[name] = _spec("fetch", {"source": rest, "inception_weights": params.paths.inception_weights})
        elif kind == "prepare":
            specs[name] = _spec("prepare", {n: _dump(d) for n, d in params.datasets.items() if d.source == rest})
        elif kind == "train":
            specs[name] = _spec("train", _train_config(params, rest), [params.experiments[rest].model["method"]])
        elif kind == "evaluate":
            runs = {run: resolve_run(params, run).to_dict() for run in experiment_runs(params, rest)}
            specs[name] = _spec("evaluate", runs, [params.experiments[rest].model["method"]])
        elif kind in ("tables", "plots", "report"):
            specs[name] = _spec(kind, {"suite": _dump(params.suites[rest]),
                                       "tables": [_dump(t) for t in params.tables.get(rest, [])],
                                       "claims": [_dump(c) for c in params.claims.get(rest, [])] if kind == "report"
                                       else []})
        elif kind == "perf":
            measured = select_experiments(params, rest, suite_settings(params, rest).methods)
            specs[name] = _spec("bench", {"suite": _dump(params.suites[rest]),
                                          "perf": _dump(suite_settings(params, rest)),
                                          "experiments": {n: _train_config(params, n) for n in measured}},
                                [params.experiments[n].model["method"] for n in measured])
        elif kind == "tune":
            study = studies[name]
            specs[name] = _spec("tune", {"study": _dump(study), "experiment": _train_config(params, study.experiment)},
                                [params.experiments[study.experiment].model["method"]])
        elif kind == "show":
            specs[name] = _spec("show", {n: _dump(d) for n, d in params.datasets.items() if d.source == "synthetic"})
        else:
            raise AssertionError(f"no spec for stage {name!r}")
    return specs


def write_specs(params: Params, dvc_yaml: Path = Path("dvc.yaml"), root: Path = Path(".")) -> list[Path]:
    """Write every stage's spec; refuse (ConfigError) when dvc.yaml no longer matches params.yaml."""
    if not dvc_yaml.is_file() or dvc_yaml.read_text() != render_pipeline(params):
        raise ConfigError(f"{dvc_yaml} is out of date with {params.source or 'params.yaml'} (an experiment, seed or "
                          "suite was added, removed or renamed): run `asymfusion pipeline`, then `dvc repro` again")
    (root / SPECS_DIR).mkdir(parents=True, exist_ok=True)
    written = []
    for name, spec in stage_specs(params).items():
        path = root / spec_path(name)
        text = json.dumps(spec, indent=1, sort_keys=True) + "\n"
        if not path.is_file() or path.read_text() != text:
            atomic_write(path, text)
        written.append(path)
    for stale in sorted((root / SPECS_DIR).glob("*.json")):
        if stale not in written:
            print(f"note: {stale} belongs to no stage any more", file=sys.stderr)
    return written
