"""The paper suite's rehearsal (benchmark/config/rehearsal.py): every paper experiment, its exact recipe except the
few keys the rehearsal names, on stand-in data; and the stages that make that data through the real code paths."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from asymfusion.benchmark.config import ConfigError, load_params, resolve_run
from asymfusion.benchmark.pipeline.stages import build_pipeline
from asymfusion.benchmark.tasks import get_task
from tests.dvc_helpers import Clone
from tests.engine_helpers import REPO

# What the rehearsal may change in a run's resolved configuration; everything else must equal the paper run's.
CHANGED = {("run",), ("experiment",), ("suite",), ("results_dir",), ("checkpoint_dir",), ("dataset_name",),
           ("dataset", "root"), ("dataset_root",), ("hha_root",), ("data", "dataset"), ("train", "epochs"),
           ("train", "max_steps_per_epoch"), ("train", "device"), ("train", "amp"), ("train", "eval_every"),
           ("model", "pretrained_file"), ("evaluate", "fid_features")}


def _flatten(value: object, prefix: tuple = ()) -> dict[tuple, object]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, (*prefix, key)).items()}
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return {k: v for i, item in enumerate(value) for k, v in _flatten(item, (*prefix, i)).items()}
    return {prefix: value}


def _stages_changed(flat: dict[tuple, object]) -> dict[tuple, object]:
    return {k: v for k, v in flat.items() if not (k[:2] == ("optimiser", "stages") and k[-1] == "epochs")}


def test_every_paper_experiment_is_rehearsed_with_its_exact_recipe() -> None:
    params = load_params(REPO / "params.yaml")
    paper = [n for n, e in params.experiments.items() if e.suite == "paper"]
    assert paper
    for name in paper:
        twin = "rehearsal-" + name.removeprefix("paper-")
        real, rehearsed = resolve_run(params, f"{name}-s0"), resolve_run(params, f"{twin}-s0")
        a = _stages_changed(_flatten(real.to_dict()))
        b = _stages_changed(_flatten(rehearsed.to_dict()))
        differing = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        assert differing <= CHANGED, (name, sorted(differing - CHANGED))
        assert rehearsed.train.max_steps_per_epoch == 1 and rehearsed.train.device == "cpu"
        assert rehearsed.train.amp == "off" and rehearsed.dataset_root.parts[-2:] == ("rehearsal", real.dataset.root)
        if real.optimiser.schedule == "multistage":
            assert [s.epochs for s in rehearsed.optimiser.stages] == [1] * len(real.optimiser.stages)
            assert rehearsed.train.epochs == len(real.optimiser.stages)
        if real.model.pretrained:
            assert rehearsed.model.pretrained_file == f"data/rehearsal/weights/{real.model.backbone}.pth"
        assert rehearsed.evaluate.fid_features == ("standin" if real.dataset.task == "translation" else "inception")


def test_rehearsal_tables_mirror_the_paper_tables_and_say_what_they_are() -> None:
    params = load_params(REPO / "params.yaml")
    paper, rehearsal = params.tables["paper"], params.tables["rehearsal"]
    assert [t.name for t in rehearsal] == [t.name for t in paper]
    for p, r in zip(paper, rehearsal):
        assert list(r.rows.values()) == list(p.rows.values())
        assert all(row.startswith("rehearsal-") for row in r.rows)
        assert r.title.startswith("REHEARSAL on stand-in data")


def test_the_pipeline_makes_the_stand_in_data_through_fetch_and_prepare() -> None:
    stages = build_pipeline(load_params(REPO / "params.yaml"))["stages"]
    for source in ("nyudv2", "cityscapes", "taskonomy"):
        assert stages[f"fetch-rehearsal-{source}"]["cmd"].startswith(f"asymfusion fetch {source} --stand-in ")
        assert stages[f"prepare-rehearsal-{source}"]["outs"] == [f"data/rehearsal/{source}"]
    # enough stand-in training images for one step of the largest batch
    assert "--n-train 6 " in stages["standins-nyudv2"]["cmd"] and "--n-train 8 " in stages["standins-cityscapes"]["cmd"]
    train = stages["train-rehearsal-nyudv2-asymfusion"]
    assert train["deps"][1:] == ["data/rehearsal/nyudv2", "data/rehearsal/weights/resnet101.tv_in1k.pth"]
    assert "standins-weights-resnet101.tv_in1k" in stages and "report-rehearsal" in stages
    assert "fetch-inception" not in stages or all("rehearsal" not in d for d in stages["fetch-inception"]["deps"])


def _with_rehearsal(tmp_path: Path, **changes: object) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["rehearsal"].update(changes)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.mark.parametrize("changes,message", [
    ({"steps_per_epoch": 0}, "rehearsal: steps_per_epoch"),
    ({"device": "tpu"}, "rehearsal: device"),
    ({"only": ["paper-nyudv2-nope"]}, "rehearsal.only: ['paper-nyudv2-nope'] are not experiments of suite 'paper'"),
    ({"stesp_per_epoch": 2}, "stesp_per_epoch"),
])
def test_bad_rehearsal_settings_are_rejected_naming_the_key(changes: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_params(_with_rehearsal(tmp_path, **changes))


def test_only_rehearses_the_named_experiments(tmp_path: Path) -> None:
    params = load_params(_with_rehearsal(tmp_path, only=["paper-nyudv2-msbn", "paper-shade-depth-msbn"]))
    assert sorted(n for n, e in params.experiments.items() if e.suite == "rehearsal") == [
        "rehearsal-nyudv2-msbn", "rehearsal-shade-depth-msbn"]
    stages = build_pipeline(params)["stages"]
    assert "standins-cityscapes" not in stages and "standins-weights-xception65" not in stages



def test_image_scale_shrinks_stand_ins_and_recipe_sizes_of_the_named_sources_only(tmp_path: Path) -> None:
    params = load_params(_with_rehearsal(tmp_path, image_scale={"cityscapes": 0.25}))
    city, nyu = resolve_run(params, "rehearsal-cityscapes-msbn-s0"), resolve_run(params, "rehearsal-nyudv2-msbn-s0")
    assert city.data.train_transforms.crop == 192 and city.data.train_transforms.scale == (0.5, 2.0)
    assert (nyu.data.train_transforms.resize, nyu.data.train_transforms.crop) == (350, 500)  # not named: exact
    stages = build_pipeline(params)["stages"]
    assert " --size 512x256 " in stages["standins-cityscapes"]["cmd"]
    assert "--size" not in stages["standins-nyudv2"]["cmd"]
    with pytest.raises(ConfigError, match="image_scale"):
        load_params(_with_rehearsal(tmp_path, image_scale={"cityscapes": 0}))


# The paper's method on each dataset and task (the same backbone, recipe and data path as its siblings).
REDUCED = ["paper-nyudv2-asymfusion", "paper-cityscapes-asymfusion", "paper-shade-depth-asymfusion"]


@pytest.mark.heavy
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_reduced_rehearsal_runs_the_real_stage_graph_on_stand_in_files_in_every_real_format(tmp_path: Path) -> None:
    """`dvc repro report-rehearsal` with `rehearsal.only`: stand-in files in the real formats through fetch --stand-in
    and prepare, each experiment's recipe for one step per stage (segmentation sizes scaled by 0.25, batch 1),
    evaluation at the stand-ins' full resolution, tables and README - the paper suite's code path end to end, in a
    temporary clone."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    # One image per step and per segmentation validation, segmentation images and crops at a quarter of their size:
    # at the exact sizes one ResNet-101 step at 500x500 costs 40 s on one core and one 1024x2048 Xception65 forward
    # 50 s, 15 min in all (the full rehearsal, docs/paper-suite.md, runs the exact sizes).
    raw["rehearsal"].update(only=REDUCED, batch_size=1, val_images=1, image_scale={"nyudv2": 0.25, "cityscapes": 0.25})
    clone = Clone(tmp_path / "repo", raw)
    ran = clone.ran(clone.dvc("repro", "report-rehearsal"))
    twins = ["rehearsal-" + n.removeprefix("paper-") for n in REDUCED]
    for source in ("nyudv2", "cityscapes", "taskonomy"):
        assert {f"standins-{source}", f"fetch-rehearsal-{source}", f"prepare-rehearsal-{source}"} <= ran, ran
    for twin in twins:
        assert {f"train-{twin}", f"evaluate-{twin}"} <= ran, ran
    assert not any(s.startswith(("train-quick", "train-paper", "train-smoke", "prepare-synthetic")) for s in ran), ran
    assert {s for s in clone.changed() if "rehearsal" in s} == set(), "a finished rehearsal must leave nothing to do"

    results = clone.root / "results" / "rehearsal"
    params = load_params(clone.root / "params.yaml")
    for twin in twins:
        metrics = json.loads((results / "metrics" / f"{twin}-s0.json").read_text())
        protocol, cfg = metrics["protocol"], resolve_run(params, f"{twin}-s0")
        assert protocol["data"].startswith("STAND-IN"), protocol["data"]
        assert protocol["pretrained"] == (f"STAND-IN weights (random init, not ImageNet) from {cfg.model.pretrained_file}"
                                          if cfg.model.pretrained else "none (random init)"), protocol
        assert protocol["batch"] == {"per_device": 1, "devices": 1, "effective": 1}
        assert protocol["samples"] == (2 if cfg.dataset.task == "translation" else 1)  # FID/KID need two
        stages = cfg.optimiser.stages if cfg.optimiser.schedule == "multistage" else []
        assert len(metrics["history"]) == (len(stages) or 2), metrics["history"]  # every stage boundary crossed
        # segmentation at the full resolution of the real frames; translation at CEN's 256 (val resize of 512)
        real_size = {"nyudv2": [120, 160], "cityscapes": [256, 512], "taskonomy": [256, 256]}[cfg.dataset.source]
        assert protocol["input_size"] == real_size, (twin, protocol["input_size"])
        main = metrics["metrics"]["ensemble"][get_task(cfg.dataset.task).main_metric]
        assert isinstance(main, float) and math.isfinite(main), (twin, main)
        if get_task(cfg.dataset.task).distribution_metrics:  # FID/KID through the stand-in features, said so
            assert math.isfinite(metrics["metrics"]["ensemble"]["fid"]), metrics["metrics"]["ensemble"]
            assert metrics["metrics"]["ensemble"]["fid_features"].startswith("stand-in features")
    readme = (results / "README.md").read_text()
    assert "REHEARSAL" in readme and "STAND-IN" in readme
    for table in (results / "tables").glob("*.md"):
        assert "Protocol:" in table.read_text() and "STAND-IN" in table.read_text(), table
