"""The paper suite's rehearsal (benchmark/config/rehearsal.py): every paper experiment, its exact recipe except the
few keys the rehearsal names, on stand-in data; and the stages that make that data through the real code paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from asymfusion.benchmark.config import ConfigError, load_params, resolve_run
from asymfusion.benchmark.pipeline.stages import build_pipeline
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

