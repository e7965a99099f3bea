"""The generated DVC pipeline: up to date with params.yaml, and a micro suite through real `dvc repro`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from asymfusion.benchmark.config import load_params
from asymfusion.benchmark.pipeline import build_pipeline, render_pipeline
from tests.engine_helpers import REPO, micro_params

DVC = str(Path(sys.executable).with_name("dvc"))


def test_committed_dvc_yaml_is_up_to_date_with_params() -> None:
    assert (REPO / "dvc.yaml").read_text() == render_pipeline(load_params(REPO / "params.yaml")), (
        "dvc.yaml is stale: run `asymfusion pipeline`")


def test_each_experiment_stage_depends_on_its_own_params_section_only() -> None:
    stages = build_pipeline(load_params(REPO / "params.yaml"))["stages"]
    train = stages["train-quick-asymfusion"]
    assert "experiments.quick-asymfusion" in train["params"]
    assert not any(p.startswith("experiments.") and p != "experiments.quick-asymfusion" for p in train["params"])
    assert all(next(iter(o.values())).get("persist") for o in train["outs"] if "checkpoints/" in next(iter(o)))
    assert "data/synthetic/segmentation" in train["deps"]


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"{' '.join(argv)} failed\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_micro_suite_through_dvc_repro_and_dvc_reads_the_outputs(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for folder in ("benchmark", "models", "datasets"):
        shutil.copytree(REPO / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    params_path = micro_params(repo, Path("data"), ["msbn", "asymfusion"], epochs=2)
    raw = yaml.safe_load(params_path.read_text())
    raw["paths"] = {"data": "data", "checkpoints": "checkpoints"}
    raw["suites"]["micro"].update(results="results/micro", perf=False)
    raw["tables"] = {"micro": [{"name": "main", "title": "Micro", "kind": "segmentation",
                                "rows": {"micro-msbn": "MSBN", "micro-asymfusion": "AsymFusion"},
                                "baselines": ["micro-msbn"]}]}
    raw["claims"] = {"micro": [{"statement": "AsymFusion > MSBN", "better": ["micro-asymfusion"],
                                "worse": ["micro-msbn"]}]}
    params_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    _run(["git", "init", "-q"], repo)
    _run([DVC, "init", "-q"], repo)
    _run([sys.executable, "-m", "asymfusion.benchmark.cli", "pipeline"], repo)
    _run(["git", "add", "-A"], repo)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "micro"], repo)

    _run([DVC, "repro", "report-micro"], repo)
    results = repo / "results" / "micro"
    for path in ("metrics/micro-msbn-s0.json", "tables/main.md", "tables/main.tex", "tables/main.csv",
                 "plots/summary/bars-main.png", "README.md", "claims.json"):
        assert (results / path).is_file(), path
    assert "AsymFusion > MSBN" in (results / "README.md").read_text()

    metrics = json.loads(_run([DVC, "metrics", "show", "--json"], repo).stdout)
    assert "results/micro/metrics/micro-asymfusion-s0.json" in json.dumps(metrics)
    _run([DVC, "plots", "show", "-o", str(tmp_path / "plots_html")], repo)
    assert (tmp_path / "plots_html" / "index.html").is_file()
    shown = _run([DVC, "exp", "show", "--no-pager", "--csv"], repo).stdout
    assert "experiments.micro-msbn" in shown or "micro-msbn" in shown

    status = _run([DVC, "status", "report-micro"], repo).stdout
    assert "changed" not in status, status
    repro_again = _run([DVC, "repro", "report-micro"], repo).stdout
    assert "didn't change" in repro_again or "is cached" in repro_again or "Data and pipelines are up to date" in repro_again
