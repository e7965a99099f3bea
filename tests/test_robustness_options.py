"""#19's run options: train.modality_dropout and evaluate.corruptions, validated at load time and applied as named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from asymfusion.benchmark.config import ConfigError, load_params, resolve_run
from asymfusion.benchmark.engine.step import drop_modalities
from tests.engine_helpers import REPO, micro_params


def test_modality_dropout_zeroes_at_most_one_modality_per_sample_at_the_rate_asked() -> None:
    inputs = {"rgb": torch.ones(4000, 3, 2, 2), "depth": torch.full((4000, 1, 2, 2), 2.0)}
    out = drop_modalities(inputs, 0.3, torch.Generator().manual_seed(0))
    rgb_gone = (out["rgb"] == 0).flatten(1).all(1)
    depth_gone = (out["depth"] == 0).flatten(1).all(1)
    assert not (rgb_gone & depth_gone).any()
    assert abs((rgb_gone | depth_gone).float().mean().item() - 0.3) < 0.03
    assert abs(rgb_gone.float().mean().item() - 0.15) < 0.03
    kept = ~depth_gone
    assert (out["depth"][kept] == 2.0).all()
    again = drop_modalities(inputs, 0.3, torch.Generator().manual_seed(0))
    assert all(torch.equal(out[k], again[k]) for k in out)


def test_modality_dropout_leaves_a_single_modality_alone() -> None:
    x = {"rgb": torch.ones(8, 3, 2, 2)}
    assert drop_modalities(x, 0.9, torch.Generator().manual_seed(0)) is x


def _params_with(tmp_path: Path, experiment: str, **sections: dict) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    entry = raw["experiments"][experiment]
    for key, value in sections.items():
        entry.setdefault(key, {}).update(value)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize("section,value,message", [
    ("evaluate", {"corruptions": ["depth/fog"]}, "unknown corruption 'depth/fog'"),
    ("evaluate", {"corruptions": ["depth/holes@9"]}, "severity must be one of 1..5"),
    ("evaluate", {"corruptions": ["depth/holes", "depth/holes@2"]}, "name some corruption twice"),
    ("train", {"modality_dropout": 1.0}, "modality_dropout"),
    ("data", {"depth_encoding": "log"}, "depth_encoding"),
])
def test_bad_robustness_options_are_rejected_when_params_load(tmp_path: Path, section: str, value: dict,
                                                              message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_params(_params_with(tmp_path, "quick-msbn", **{section: value}))


def test_corruptions_of_an_input_the_run_does_not_have_are_refused(tmp_path: Path) -> None:
    params = load_params(_params_with(tmp_path, "quick-single-rgb", evaluate={"corruptions": ["depth/holes@1"]}))
    with pytest.raises(ConfigError, match="not an input of this experiment"):
        resolve_run(params, "quick-single-rgb-s0")


def test_corruptions_on_translation_are_refused(tmp_path: Path) -> None:
    params = load_params(_params_with(tmp_path, "quick-t2-msbn", evaluate={"corruptions": ["rgb/jpeg@1"]}))
    with pytest.raises(ConfigError, match="applies no corruptions"):
        resolve_run(params, "quick-t2-msbn-s0")


@pytest.mark.slow
def test_evaluate_with_corruptions_scores_each_one_on_the_same_images_and_feeds_the_table(
        tmp_path: Path, synthetic_data_dir: Path) -> None:
    from asymfusion.benchmark.config import TableConfig, resolve_run
    from asymfusion.benchmark.engine.evaluate import evaluate_run
    from asymfusion.benchmark.engine.train import train_run
    from asymfusion.benchmark.report.tables import build_table, load_records, render

    params = micro_params(tmp_path, synthetic_data_dir, ["early"], epochs=1)
    cfg = resolve_run(load_params(params), "micro-early-s0")
    train_run(cfg, progress=False)
    plain = evaluate_run(cfg, checkpoint="last.pt")
    assert plain["corruptions"] is None
    record = evaluate_run(cfg, checkpoint="last.pt", corruptions=["depth/missing@5", "rgb/jpeg"])
    corrupted = record["corruptions"]
    assert corrupted["samples"] == 5 and set(corrupted["scores"]) == {
        "clean", "depth/missing@5", *(f"rgb/jpeg@{s}" for s in range(1, 6))}
    # all images, so "clean" is the clean metric; depth missing everywhere is the blanked-depth probe (zeros)
    assert corrupted["scores"]["clean"]["ensemble"]["miou"] == pytest.approx(record["metrics"]["ensemble"]["miou"])
    assert corrupted["scores"]["depth/missing@5"]["ensemble"]["miou"] == pytest.approx(
        record["robustness"]["blanked"]["depth"]["ensemble"]["miou"])
    table = TableConfig(name="c", title="C", kind="corruptions", rows={"micro-early": "early"},
                        baselines=["micro-early"])
    text = render(build_table(table, load_records(cfg.results_dir / "metrics")), "md")
    assert "early" in text and "mCE" in text
