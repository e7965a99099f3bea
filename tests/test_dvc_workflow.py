"""The smoke suite through the real `dvc` CLI in a temporary clone: a user's edit reruns exactly what it affects,
and a second clone pulls everything from a DVC remote with nothing to rerun."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml

from tests.dvc_helpers import Clone, suite_only_params
from tests.engine_helpers import REPO

SMOKE = ["smoke-early", "smoke-msbn", "smoke-asymfusion"]
README_DROP = "^(benchmark|models|datasets|checkpoints|data|results/(specs|[^/]+/(metrics|plots|tables)))"
TINY_RENDER = {"size": 48, "n_train": 48, "n_val": 16, "views_per_scene": 2, "seed": 0}
NEW_METHOD = '''"""msbn_twin: MSBN under another name (a new method file for the pipeline test)."""

from asymfusion.models import register_fusion
from asymfusion.models.fusion.base import FusionMethod
from asymfusion.models.networks import FusionModel, StackedModel


@register_fusion("msbn_twin")
class MsbnTwin(FusionMethod):
    def build(self) -> FusionModel:
        return StackedModel(self.config)
'''


def _stages_of(experiment: str) -> set[str]:
    return {f"train-{experiment}", f"evaluate-{experiment}"}


@pytest.mark.heavy
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_smoke_suite_follows_edits_through_dvc_and_a_remote(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    clone = Clone(tmp_path / "repo", suite_only_params(raw, "smoke", synthetic=TINY_RENDER))

    # 1. From nothing: every stage runs, every declared output exists.
    first = clone.dvc("repro", "report-smoke")
    for name in SMOKE:
        assert _stages_of(name) <= clone.ran(first)
    results = clone.root / "results" / "smoke"
    for rel in ("README.md", "tables/main.md", "scores/smoke-msbn-s0.json", "history/smoke-msbn-s0.json",
                "metrics/smoke-asymfusion-s0.json", "plots/qualitative/smoke-early-s0.png"):
        assert (results / rel).is_file(), rel
    assert "checks that every stage of the pipeline runs" in (results / "README.md").read_text()  # table note
    scores = json.loads((results / "scores" / "smoke-msbn-s0.json").read_text())
    assert set(scores) == {"miou", "rgb_miou", "depth_miou", "gflops", "mparams"}
    assert clone.changed() == set(), "a fresh repro must leave nothing to do"
    clone.dvc("remote", "add", "-d", "shared", str(tmp_path / "remote"))  # docs/scale-out.md: s3://, ssh://, ...
    clone.commit("smoke results")

    # 1b. Another machine: a git clone pulls data, checkpoints and results from the remote and has nothing to rerun.
    clone.dvc("push")
    second = Clone.git_clone(clone, tmp_path / "second")
    assert not (second.root / "checkpoints").exists() and not (second.root / "data").exists()
    second.dvc("pull")
    assert second.changed() == set(), "every stage must be up to date after dvc pull"
    assert second.ran(second.dvc("repro", "report-smoke")) == set()
    for rel in ("checkpoints/smoke/smoke-msbn-s0/best.pt", "results/smoke/metrics/smoke-msbn-s0.json"):
        assert (second.root / rel).read_bytes() == (clone.root / rel).read_bytes(), rel
    params_before = (clone.root / "params.yaml").read_text()
    ckpt = clone.root / "checkpoints" / "smoke" / "smoke-msbn-s0" / "last.pt"
    history_before = (results / "history" / "smoke-msbn-s0.json").read_text()

    # 2. A learning rate of one experiment, the DVC way: only that experiment's stages (and the suite's reports).
    exp = clone.dvc("exp", "run", "-S", "++experiments.smoke-msbn.optimiser.lr_decoder=0.01")
    ran = clone.ran(exp)
    assert _stages_of("smoke-msbn") <= ran
    assert not ran & (_stages_of("smoke-early") | _stages_of("smoke-asymfusion")), ran
    assert ran <= _stages_of("smoke-msbn") | {"specs", "tables-smoke", "plots-smoke", "report-smoke"}, ran
    diff = [line for line in clone.run("git", "diff", "--", "params.yaml").stdout.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert [line.split()[-1] for line in diff] == ["optimiser:", "0.01"], "\n".join(diff)  # nothing else rewritten
    assert (results / "history" / "smoke-msbn-s0.json").read_text() != history_before, "it must have retrained"
    assert list(ckpt.parent.parent.glob("smoke-msbn-s0.old-*")), "old checkpoints are moved aside, not deleted"
    clone.commit("lr 0.01")

    # 3. An evaluation-only change reruns evaluate stages, never training.
    exp = clone.dvc("exp", "run", "-S", "++experiments.smoke-asymfusion.evaluate.blank=mean")
    ran = clone.ran(exp)
    assert "evaluate-smoke-asymfusion" in ran and not any(s.startswith("train-") for s in ran), ran
    clone.commit("blank mean")

    # 4. Code: the task module that picks best.pt retrains everything; a new method file plus experiment runs only it.
    metrics_py = clone.root / "benchmark" / "tasks" / "segmentation.py"  # main metric and direction: picks best.pt
    original = metrics_py.read_text()
    metrics_py.write_text(original + "\n# a comment only: documentation edits rerun nothing\n")
    clone.dvc("repro", "specs")
    assert clone.changed() == set()
    metrics_py.write_text(original + "\nEDITED = True  # an edit to the code that decides best.pt\n")
    clone.dvc("repro", "specs")
    assert {f"train-{n}" for n in SMOKE} <= clone.changed()
    clone.run("git", "checkout", "--", "benchmark/tasks/segmentation.py")
    clone.dvc("repro", "specs")
    assert clone.changed() == set(), "undoing the edit must leave nothing to rerun"

    (clone.root / "models" / "fusion" / "msbn_twin.py").write_text(NEW_METHOD)
    params = yaml.safe_load((clone.root / "params.yaml").read_text())
    params["experiments"]["smoke-twin"] = {"base": "smoke-seg", "model": {"method": "msbn_twin"}}
    (clone.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, width=1000))
    clone.asymfusion("pipeline")
    before = clone.changed()
    assert _stages_of("smoke-twin") <= before
    assert not any(s.startswith(("train-", "evaluate-")) and "twin" not in s for s in before), before
    repro = clone.dvc("repro", "report-smoke")
    ran = clone.ran(repro)
    assert not any(s.startswith(("train-", "evaluate-")) and "twin" not in s for s in ran), ran
    assert clone.changed() == set()
    clone.commit("new method")

    # 5. DVC's own views: a narrow exp show, small metrics, training curves.
    def columns(*flags: str) -> list[str]:
        shown = clone.dvc("exp", "show", "--no-pager", "--csv", *flags).stdout
        return [c for c in next(csv.reader(io.StringIO(shown))) if c not in ("rev", "typ", "parent")]

    everything = columns()  # DVC lists every params.yaml key and every dependency: measured, not bounded here
    assert len(everything) < 130, len(everything)
    # The README's view over the last commits (each edit above was committed): what varies, no dependency hashes.
    readable = columns("-n", "6", "--only-changed", "--drop", README_DROP)
    print(f"dvc exp show: {len(everything)} columns; --only-changed --drop: {len(readable)}: {readable}")
    assert len(readable) <= 40, f"{len(readable)} columns: {readable}"
    assert "experiments.smoke-msbn.optimiser.lr_decoder" in readable
    assert "results/smoke/scores/smoke-msbn-s0.json:miou" in readable
    metrics = json.loads(clone.dvc("metrics", "show", "--json").stdout)
    assert "error" not in json.dumps(metrics).lower()
    assert len(json.dumps(metrics)) < 5000
    clone.dvc("plots", "show", "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    assert "smoke: training loss" in html and "train_loss" in html and "val_ensemble_miou" in html
    assert "error" not in clone.dvc("plots", "show", "--json").stdout[:200].lower()
    assert (clone.root / "params.yaml").read_text() != params_before
