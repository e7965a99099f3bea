"""`--set` tries (benchmark/config/overrides.py), `evaluate --max-samples`, and what train shows as it runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from asymfusion.benchmark.config import ConfigError, load_params, resolve_run
from asymfusion.benchmark.config.overrides import Overrides, parse_set
from asymfusion.benchmark.engine.progress import JobsDisplay, RunProgress, format_eta
from tests.engine_helpers import cli, micro_params


def test_a_set_edits_only_that_experiment_validated_and_redirects_its_outputs_to_tries(
        tmp_path: Path, synthetic_data_dir: Path) -> None:
    params_path = micro_params(tmp_path, synthetic_data_dir, ["asymfusion", "early"])
    plain = load_params(params_path)
    tried = load_params(params_path, Overrides.for_run("micro-asymfusion-s0", ["optimiser.lr_decoder=0.05",
                                                                               "model.fusion.stages=[1, 2]"]))
    cfg = resolve_run(tried, "micro-asymfusion-s0")
    assert cfg.optimiser.lr_decoder == 0.05 and cfg.optimiser.lr_encoder == 0.01
    assert cfg.overrides == ["optimiser.lr_decoder=0.05", "model.fusion.stages=[1, 2]"]
    assert resolve_run(tried, "micro-early-s0").overrides == []
    assert resolve_run(tried, "micro-early-s0").optimiser == resolve_run(plain, "micro-early-s0").optimiser
    assert cfg.results_dir == tmp_path / "tries" / "results"
    assert cfg.model.fusion["stages"] == [1, 2]
    assert cfg.checkpoint_dir == tmp_path / "checkpoints" / "tries" / "micro" / "micro-asymfusion-s0"
    kept = load_params(params_path, Overrides.for_run("micro-asymfusion", ["optimiser.lr_decoder=0.05"],
                                                      into_suite=True))
    assert resolve_run(kept, "micro-asymfusion-s0").results_dir == resolve_run(plain, "micro-asymfusion-s0").results_dir


@pytest.mark.parametrize("sets, message", [
    (["optimiser.lr_decoder=-1"], "lr_decoder"),
    (["optimiser.nope=1"], "nope"),
    (["optimiser.lr_decoder.x=1"], "not a section"),
])
def test_a_bad_set_is_refused_naming_the_key(sets: list[str], message: str, tmp_path: Path,
                                             synthetic_data_dir: Path) -> None:
    params_path = micro_params(tmp_path, synthetic_data_dir, ["msbn"])
    with pytest.raises(ConfigError, match=message):
        load_params(params_path, Overrides.for_run("micro-msbn-s0", sets))


def test_set_syntax_errors_name_the_expected_form() -> None:
    assert parse_set("a.b=[1, 2]") == (["a", "b"], [1, 2])
    for bad in ("novalue", "=3", "a..b=1"):
        with pytest.raises(ValueError, match="KEY=VALUE"):
            parse_set(bad)


@pytest.mark.slow
def test_train_and_evaluate_with_set_and_max_samples_write_a_try_that_says_so(
        tmp_path: Path, synthetic_data_dir: Path) -> None:
    params_path = micro_params(tmp_path, synthetic_data_dir, ["early"], epochs=2)
    train = cli("train", "micro-early-s0", "--no-progress", "--set", "train.max_steps_per_epoch=1",
                params=params_path)
    assert "last.pt (epoch 2)" in train.stdout and "best.pt: epoch" in train.stdout
    assert "micro-early-s0: epoch 1/2 loss" in train.stderr and "run ETA" in train.stderr  # a line per epoch
    evaluate = cli("evaluate", "micro-early-s0", "--max-samples", "3", "--set", "train.max_steps_per_epoch=1",
                   "--checkpoint", "last", params=params_path)
    assert "last.pt (epoch 2)" in evaluate.stdout
    record = json.loads((tmp_path / "tries" / "results" / "metrics" / "micro-early-s0.json").read_text())
    assert record["overrides"] == ["train.max_steps_per_epoch=1"] and record["protocol"]["samples"] == 3
    assert not (tmp_path / "results").exists()  # nothing written into the suite's own results
    refused = cli("evaluate", "micro-early-s0", "--max-samples", "0", params=params_path, check=False)
    assert refused.returncode == 2 and "positive integer" in refused.stderr


def test_run_progress_lines_and_events_carry_the_whole_runs_eta(capsys: pytest.CaptureFixture) -> None:
    shown = RunProgress("r-s0", epochs=3, steps=2, start_epoch=1, bar=False)
    for epoch in (1, 2):
        shown.start_epoch(epoch)
        shown.step(1.0, 10.0)
        shown.step(1.0, 10.0)
        shown.end_epoch({"epoch": epoch + 1, "train_loss": 0.5, "seconds": 1.0, "val_ensemble_miou": 40.0}, "miou")
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("r-s0: epoch 2/3 loss 0.5000, val miou 40") and lines[1].endswith("run ETA 0:00)")

    class Queue(list):
        put = list.append

    events = Queue()
    sent = RunProgress("r-s1", epochs=2, steps=1, start_epoch=0, bar=False, queue=events)
    sent.start_epoch(0)
    sent.step(2.0, 5.0)
    sent.end_epoch({"epoch": 1, "train_loss": 2.0, "seconds": 1.0}, "miou")
    assert [e["kind"] for e in events] == ["step", "epoch"] and events[-1]["done"] == 1 and events[-1]["total"] == 2
    JobsDisplay(["r-s1"], live=False).handle(events[-1])
    assert capsys.readouterr().err.startswith("r-s1: epoch 1/2 loss 2.0000")
    assert format_eta(3725) == "1:02:05" and format_eta(65) == "1:05" and format_eta(None) == "?"
