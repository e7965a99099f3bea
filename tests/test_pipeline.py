"""The generated DVC pipeline: up to date with params.yaml, stages fed by spec files that change exactly when a
stage's configuration or code does, and a params.yaml that `dvc exp run -S` rewrites by one line."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
import yaml

from asymfusion.benchmark.config import Params, load_params
from asymfusion.benchmark.pipeline.stages import build_pipeline, render_pipeline, spec_path
from asymfusion.benchmark.pipeline.specs import stage_specs, write_specs
from asymfusion.benchmark.config import ConfigError
from tests.engine_helpers import REPO


@pytest.fixture(scope="module")
def params() -> Params:
    return load_params(REPO / "params.yaml")


@pytest.fixture(scope="module")
def specs(params: Params) -> dict:
    return stage_specs(params)


def _edited(tmp_path: Path, edit) -> Params:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_params(path)


def _changed(a: dict, b: dict) -> set[str]:
    return {name for name in a.keys() | b.keys() if a.get(name) != b.get(name)}


def test_committed_dvc_yaml_is_up_to_date_with_params(params: Params) -> None:
    assert (REPO / "dvc.yaml").read_text() == render_pipeline(params), "dvc.yaml is stale: run `asymfusion pipeline`"


def test_every_stage_depends_on_its_spec_and_the_specs_stage_on_all_params_and_code(params: Params) -> None:
    stages = build_pipeline(params)["stages"]
    assert stages["specs"]["deps"] == ["benchmark", "models", "datasets"]
    assert {"experiments", "recipes", "datasets", "suites"} <= set(stages["specs"]["params"])
    produced = {next(iter(o)) for o in stages["specs"]["outs"]}
    for name, stage in stages.items():
        if name != "specs":
            assert stage["deps"][0] == spec_path(name) and spec_path(name) in produced, name
            assert "params" not in stage, f"{name}: params reach it through its spec"
    train = stages["train-quick-asymfusion"]
    assert "data/synthetic/segmentation" in train["deps"]
    assert all(o[next(iter(o))].get("persist") for o in train["outs"])
    assert any("results/quick/history/quick-asymfusion-s0.json" in p for p in train["plots"])
    assert any("results/quick/scores/quick-asymfusion-s0.json" in m for m in stages["evaluate-quick-asymfusion"]["metrics"])


def test_train_spec_holds_the_training_config_and_code_but_no_evaluation_options(specs: dict) -> None:
    train, evaluate = specs["train-quick-asymfusion"], specs["evaluate-quick-asymfusion"]
    assert set(train["config"]) == {"quick-asymfusion-s0", "quick-asymfusion-s1", "quick-asymfusion-s2"}
    assert "evaluate" not in train["config"]["quick-asymfusion-s0"]
    assert "evaluate" in evaluate["config"]["quick-asymfusion-s0"]
    code = set(train["code"])
    assert {"benchmark/engine/train.py", "benchmark/engine/metrics.py", "models/fusion/asymfusion.py", "models/fusion/ops.py"} <= code
    assert not code & {"models/fusion/late.py", "models/fusion/msbn.py", "benchmark/tune/study.py", "benchmark/perf/bench.py",
                       "benchmark/report/tables.py", "datasets/prepare/nyudv2.py", "datasets/synthetic/render.py"}
    assert "benchmark/engine/evaluate.py" in evaluate["code"] and "benchmark/engine/evaluate.py" not in code


def test_an_evaluation_only_change_changes_only_that_evaluate_spec(tmp_path: Path, specs: dict) -> None:
    edited = _edited(tmp_path, lambda raw: raw["experiments"]["quick-msbn"].update(evaluate={"blank": "mean"}))
    assert _changed(specs, stage_specs(edited)) == {"evaluate-quick-msbn"}


def test_a_recipe_change_reaches_every_experiment_that_inherits_it(tmp_path: Path, specs: dict) -> None:
    edited = _edited(tmp_path, lambda raw: raw["recipes"]["quick-trans"]["optimiser"].update(lr_decoder=0.001))
    changed = _changed(specs, stage_specs(edited))
    expected = {f"{kind}-quick-{t}-{m}" for kind in ("train", "evaluate") for t in ("t2", "t3")
                for m in ("early", "late", "msbn", "asymfusion")}
    assert changed == expected


def test_a_learning_rate_change_changes_that_experiments_train_and_evaluate_specs(tmp_path: Path, specs: dict) -> None:
    edited = _edited(tmp_path, lambda raw: raw["experiments"]["smoke-msbn"].update(optimiser={"lr_decoder": 0.01}))
    assert _changed(specs, stage_specs(edited)) == {"train-smoke-msbn", "evaluate-smoke-msbn"}


def test_specs_refuse_a_stale_dvc_yaml(tmp_path: Path) -> None:
    edited = _edited(tmp_path, lambda raw: raw["experiments"].update(
        {"smoke-late": {"base": "smoke-seg", "model": {"method": "late"}}}))
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    with pytest.raises(ConfigError, match="dvc.yaml is out of date.*asymfusion pipeline"):
        write_specs(edited, tmp_path / "dvc.yaml", tmp_path)
    assert not (tmp_path / "results").exists(), "nothing is written before the check"


def _dvc_set_param(path: Path, override: str) -> list[str]:
    """What `dvc exp run -S override` does to the file (DVC's own function), as changed lines."""
    from dvc.utils.hydra import apply_overrides

    before = path.read_text().splitlines()
    apply_overrides(str(path), [override])
    return [line for line in difflib.unified_diff(before, path.read_text().splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


@pytest.mark.parametrize("override, expected", [
    ("synthetic.seed=0", []),
    ("experiments.smoke-msbn.model.method=late", ["-", "+"]),
    ("recipes.quick-seg.optimiser.lr_encoder=0.03", ["-", "+"]),
    ("experiments.quick-af-stages-12.model.fusion.stages=[1,3]", ["-", "+"]),
    ("++experiments.quick-cmx.optimiser.lr_decoder=0.01", ["-", "+", "+"]),  # the flow mapping wraps once
])
def test_dvc_set_param_changes_only_the_line_it_sets(tmp_path: Path, override: str, expected: list[str]) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    diff = _dvc_set_param(path, override)
    assert [line[0] for line in diff] == expected, "\n".join(diff)
    key, _, value = override.lstrip("+").partition("=")
    if diff:
        assert key.split(".")[-1] in "\n".join(diff) and value.strip("[]").split(",")[-1] in diff[-1]
    load_params(path)  # still valid
