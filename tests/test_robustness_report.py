"""Robustness summaries (benchmark/report/robustness.py) and the `corruptions` table, on hand-made metric records."""

from __future__ import annotations

import math

import pytest

from asymfusion.benchmark.config import TableConfig
from asymfusion.benchmark.report.robustness import mce, severity_curves
from asymfusion.benchmark.report.tables import build_table, render


def _record(experiment: str, seed: int, clean: float, drops: dict[str, float]) -> dict:
    """mIoU (%) `clean`, and under each corruption modality/name at severities 1..2: clean - drop x severity."""
    scores = {"clean": {"ensemble": {"miou": clean}}}
    for name, drop in drops.items():
        for s in (1, 2):
            scores[f"{name}@{s}"] = {"ensemble": {"miou": clean - drop * s}}
    return {"experiment": experiment, "seed": seed, "task": "segmentation", "method": experiment,
            "outputs": ["ensemble"], "metrics": {"ensemble": {"miou": clean}}, "protocol": {},
            "corruptions": {"samples": 10, "seed": 0, "seconds": 1.0, "scores": scores}}


GROUPS = {
    "base": [_record("base", s, 50.0 + s, {"depth/holes": 10.0, "rgb/jpeg": 5.0}) for s in (0, 1)],
    "robust": [_record("robust", s, 48.0 + s, {"depth/holes": 2.0, "rgb/jpeg": 1.0}) for s in (0, 1)],
}


def test_mce_is_the_mean_over_corruptions_of_summed_errors_relative_to_the_baseline() -> None:
    # baseline seed-mean errors: holes (100-40.5) + (100-30.5) = 129; jpeg (100-45.5) + (100-40.5) = 114
    # robust seed 0: holes (100-46) + (100-44) = 110, jpeg (100-47) + (100-46) = 107
    expected = 100 * (110 / 129 + 107 / 114) / 2
    assert mce(GROUPS, ["robust"], "base")["robust"][0] == pytest.approx(expected)
    # the baseline itself: seed 0 has errors 130 and 115, seed 1 128 and 113, around its mean of 100
    assert mce(GROUPS, ["base"], "base")["base"] == pytest.approx([100 * (130 / 129 + 115 / 114) / 2,
                                                                    100 * (128 / 129 + 113 / 114) / 2])


def test_severity_curves_average_a_modality_s_corruptions_per_severity_over_seeds() -> None:
    curves = severity_curves(GROUPS, ["base"], "depth")["base"]
    assert curves[0][0] == pytest.approx(50.5) and curves[2][0] == pytest.approx(30.5)
    assert curves[1][2] == 2 and curves[1][1] == pytest.approx(math.sqrt(0.5))


def test_a_corruptions_table_shows_clean_corrupted_relative_and_mce() -> None:
    table = TableConfig(name="c", title="t", kind="corruptions", rows={"base": "base", "robust": "robust"},
                        baselines=["base"])
    frame = build_table(table, GROUPS)
    robust = frame[frame.experiment == "robust"].iloc[0]
    assert robust["mIoU under corruption"] == pytest.approx(48.5 - (2 * 1.5 + 1 * 1.5) / 2)
    assert robust["relative robustness"] == pytest.approx(robust["mIoU under corruption"] / 48.5, rel=1e-3)
    assert robust["mIoU under depth corruption"] == pytest.approx(48.5 - 3.0)
    text = render(frame, "md")
    assert "mCE vs base (%)" in text and "relative robustness" in text


def test_a_corruptions_table_names_runs_evaluated_without_corruptions() -> None:
    bare = {**GROUPS, "plain": [{**_record("plain", 0, 40.0, {}), "corruptions": None}]}
    table = TableConfig(name="c", title="t", kind="corruptions", rows={"base": "b", "plain": "p"})
    with pytest.raises(ValueError, match=r"\['plain'\] were evaluated without corruptions"):
        build_table(table, bare)


def test_the_severity_plot_draws_one_line_per_row_and_panel_from_the_records(tmp_path) -> None:
    from asymfusion.benchmark.report.plots import severity

    table = TableConfig(name="c", title="C", kind="corruptions", rows={"base": "base", "robust": "robust"})
    path = severity(table, GROUPS, tmp_path / "severity-c.png")
    assert path is not None and path.stat().st_size > 5000
    from PIL import Image

    width, height = Image.open(path).size
    assert width > 1.8 * height  # two panels (rgb, depth) side by side
    only_depth = {k: [_record(k, s, 50.0, {"depth/holes": 1.0}) for s in (0, 1)] for k in GROUPS}
    one = severity(table, only_depth, tmp_path / "one.png")
    assert one is not None and Image.open(one).size[0] < width
