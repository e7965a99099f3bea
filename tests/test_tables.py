"""Table aggregation and formatting on fixed metric files: means, stds, Welch's t-test, bolding, claims."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from asymfusion.benchmark.config import ClaimConfig, TableConfig
from asymfusion.benchmark.report.readme import judge
from asymfusion.benchmark.report.tables import build_table, load_records, render, write_tables

MIOU = {"exp-a": [50.0, 52.0, 54.0], "exp-b": [60.0, 61.0, 62.5], "exp-c": [40.0, 40.0, 41.0]}


def _record(experiment: str, seed: int, miou: float) -> dict:
    branches = {"rgb": {"miou": miou - 10, "pixel_acc": 80.0, "mean_acc": 60.0},
                "depth": {"miou": miou - 20, "pixel_acc": 70.0, "mean_acc": 50.0}}
    return {
        "experiment": experiment, "seed": seed, "method": experiment.split("-")[1], "task": "segmentation",
        "outputs": ["rgb", "depth", "ensemble"], "parameters": 2_000_000 if experiment == "exp-c" else 1_000_000,
        "gflops_per_image": 0.5, "timings": {"train_images_per_s": 100.0 + seed},
        "metrics": {**branches, "ensemble": {"miou": miou, "pixel_acc": 90.0 + seed, "mean_acc": 70.0}},
        "robustness": {"blanked": {"rgb": {"ensemble": {"miou": miou / 2}}, "depth": {"ensemble": {"miou": miou - 5}}}},
        "history": [{"val_ensemble_miou": miou / 2}, {"val_ensemble_miou": miou}],
    }


@pytest.fixture
def metrics_dir(tmp_path: Path) -> Path:
    out = tmp_path / "metrics"
    out.mkdir()
    for exp, values in MIOU.items():
        for seed, v in enumerate(values):
            (out / f"{exp}-s{seed}.json").write_text(json.dumps(_record(exp, seed, v)))
    return out


def _welch_by_hand(a: list[float], b: list[float]) -> float:
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return float(2 * stats.t.sf(abs(t), df))


TABLE = TableConfig(name="main", title="Main", kind="segmentation",
                    rows={"exp-a": "A", "exp-b": "B", "exp-c": "C"}, baselines=["exp-a", "exp-c"])


def test_cells_are_mean_and_sample_std_over_seeds(metrics_dir: Path) -> None:
    frame = build_table(TABLE, load_records(metrics_dir))
    row = frame.set_index("experiment").loc["exp-a"]
    assert row["mIoU fused"] == pytest.approx(52.0)
    assert row["mIoU fused std"] == pytest.approx(2.0)  # sample std (ddof=1) of 50, 52, 54
    assert row["mIoU rgb"] == pytest.approx(42.0)
    assert row["params (M)"] == pytest.approx(1.0) and row["seeds"] == 3


def test_p_value_is_welch_against_the_best_baseline(metrics_dir: Path) -> None:
    frame = build_table(TABLE, load_records(metrics_dir)).set_index("experiment")
    assert frame.attrs["baseline"] == "A"  # best of the baselines exp-a (52) and exp-c (40.3)
    assert frame.loc["exp-b", "p vs A"] == pytest.approx(_welch_by_hand(MIOU["exp-b"], MIOU["exp-a"]), rel=1e-9)
    assert math.isnan(frame.loc["exp-a", "p vs A"])  # the baseline itself is not tested


def test_markdown_bolds_the_best_and_marks_significance(metrics_dir: Path) -> None:
    text = render(build_table(TABLE, load_records(metrics_dir)), "md")
    b_line = next(line for line in text.splitlines() if line.startswith("| B |"))
    assert "**61.2 ± 1.3**" in b_line  # best fused mIoU in bold
    p = _welch_by_hand(MIOU["exp-b"], MIOU["exp-a"])
    assert f"{p:.3f} †" in b_line if p < 0.05 else f"{p:.3f}" in b_line
    a_line = next(line for line in text.splitlines() if line.startswith("| A |"))
    assert "**" not in a_line.split("|")[4] and "(best baseline)" in a_line
    assert "| 1.000 |" in a_line  # cost columns: the mean only


def test_latex_uses_booktabs_and_escapes(metrics_dir: Path) -> None:
    text = render(build_table(TABLE, load_records(metrics_dir)), "tex")
    assert "\\toprule" in text and "\\midrule" in text and "\\bottomrule" in text
    assert "\\textbf{61.2 $\\pm$ 1.3}" in text


def test_write_tables_writes_md_csv_tex(metrics_dir: Path, tmp_path: Path) -> None:
    written = write_tables([TABLE], metrics_dir, tmp_path / "tables")
    assert {p.suffix for p in written} == {".md", ".csv", ".tex"}
    assert "mIoU fused" in (tmp_path / "tables" / "main.csv").read_text().splitlines()[0]


def _perf_row(experiment: str, batch: int, execution: str, step_ms: float) -> dict:
    return {"status": "measured", "experiment": experiment, "method": experiment.split("-")[1], "backbone": "r18",
            "size": [48, 48], "batch": batch, "execution": execution, "params": 1e6, "gflops_per_image": 0.5,
            "train_gflops_per_step": 1.0, "train_step": {"median_ms": step_ms, "iqr_ms": 1.0},
            "inference": {"median_ms": step_ms / 3, "iqr_ms": 0.1}, "train_images_per_s": batch / step_ms * 1e3,
            "achieved_gflops": 1.0, "matmul_fraction": 0.1, "peak_memory_mb": 123.0, "step_memory_mb": 100.0,
            "default_shape": batch == 16}


def test_throughput_and_memory_columns_come_from_the_benchmark(metrics_dir: Path, tmp_path: Path) -> None:
    perf = tmp_path / "perf.json"
    perf.write_text(json.dumps({"rows": [
        _perf_row("exp-a", 2, "stacked", 10.0),      # not the experiment's own batch: ignored
        _perf_row("exp-a", 16, "loop", 400.0),       # the loop execution: ignored
        _perf_row("exp-a", 16, "stacked", 200.0),    # -> 80 img/s
    ]}))
    write_tables([TABLE], metrics_dir, tmp_path / "tables", perf_json=perf)
    csv = pd.read_csv(tmp_path / "tables" / "main.csv").set_index("experiment")
    assert csv.at["exp-a", "train img/s"] == pytest.approx(80.0)
    assert csv.at["exp-a", "peak MB"] == pytest.approx(123.0)
    assert math.isnan(csv.at["exp-b", "train img/s"])  # not benchmarked: no number from elsewhere
    md = (tmp_path / "tables" / "main.md").read_text()
    assert "| 80 | 123 |" in md and "asymfusion bench" in md


def test_missing_metric_files_are_named(metrics_dir: Path) -> None:
    table = TableConfig(name="t", title="t", kind="segmentation", rows={"exp-a": "A", "exp-z": "Z"})
    with pytest.raises(FileNotFoundError, match="exp-z"):
        build_table(table, load_records(metrics_dir))


def test_robustness_table_reads_the_blanked_metrics(metrics_dir: Path) -> None:
    table = TableConfig(name="r", title="r", kind="robustness", rows={"exp-b": "B"})
    row = build_table(table, load_records(metrics_dir)).iloc[0]
    assert row["mIoU without rgb"] == pytest.approx(np.mean(MIOU["exp-b"]) / 2)
    assert row["mIoU without depth"] == pytest.approx(np.mean(MIOU["exp-b"]) - 5)


def test_claim_verdicts_follow_sign_significance_and_margin(metrics_dir: Path) -> None:
    groups = load_records(metrics_dir)
    holds = judge(ClaimConfig(statement="B > A", better=["exp-b"], worse=["exp-a"]), groups)
    assert holds["verdict"] == "holds" and holds["margin"] == pytest.approx(61.1667 - 52.0, abs=1e-3)
    assert judge(ClaimConfig(statement="A > B", better=["exp-a"], worse=["exp-b"]), groups)["verdict"] == "does not hold"
    too_small = judge(ClaimConfig(statement="B >> A", better=["exp-b"], worse=["exp-a"], min_margin=20), groups)
    assert too_small["verdict"] == "does not hold"
    best_of = judge(ClaimConfig(statement="B > best of A, C", better=["exp-b"], worse=["exp-c", "exp-a"]), groups)
    assert best_of["worse"] == "exp-a"


def test_training_curves_skip_epochs_without_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from asymfusion.benchmark.report.plots import curves

    # eval_every 2: validation after epochs 2 and 4 only
    history = [{"epoch": 1}, {"epoch": 2, "val_ensemble_miou": 20.0}, {"epoch": 3}, {"epoch": 4, "val_ensemble_miou": 30.0}]
    groups = {"exp-a": [{**_record("exp-a", s, 50.0), "history": history} for s in range(2)]}
    table = TableConfig(name="t", title="t", kind="segmentation", rows={"exp-a": "A"})
    captured = {}
    import matplotlib.axes

    original = matplotlib.axes.Axes.plot

    def spy(self, x, y, *args, **kwargs):
        captured["x"], captured["y"] = list(x), list(y)
        return original(self, x, y, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    assert curves(table, groups, tmp_path / "c.png") is not None
    assert captured == {"x": [2, 4], "y": [20.0, 30.0]}


def test_curves_and_the_training_state_read_every_validated_epoch_not_the_evaluated_checkpoints(
        tmp_path: Path) -> None:
    from asymfusion.benchmark.report.plots import curves, still_improving

    history_dir = tmp_path / "history"
    history_dir.mkdir()
    rising = [{"epoch": e, "val_ensemble_miou": 10.0 * e} for e in (2, 4, 6)]
    peaked = [{"epoch": 2, "val_ensemble_miou": 30.0}, {"epoch": 4, "val_ensemble_miou": 20.0},
              {"epoch": 6, "val_ensemble_miou": 25.0}]
    groups = {}
    for exp, rows in (("exp-a", rising), ("exp-b", peaked)):
        groups[exp] = []
        for seed in range(2):
            (history_dir / f"{exp}-s{seed}.val.json").write_text(json.dumps(rows))
            # the record's history stops at its best.pt, as evaluate writes it
            groups[exp].append({**_record(exp, seed, 50.0), "history": rows[: 1 + int(np.argmax(
                [r["val_ensemble_miou"] for r in rows]))]})
    table = TableConfig(name="t", title="t", kind="segmentation", rows={"exp-a": "A", "exp-b": "B"})
    assert still_improving(table, groups, history_dir) == ["A"]
    from asymfusion.benchmark.report.plots import _validation_history

    assert len(_validation_history(groups["exp-b"][0], history_dir)) == 3  # B's curve goes on past its best
    assert len(_validation_history(groups["exp-b"][0], None)) == 1
    assert curves(table, groups, tmp_path / "c.png", history_dir) is not None


def test_holm_adjusts_each_tables_p_values_and_is_monotone() -> None:
    from asymfusion.benchmark.report.tables import holm

    # m = 3: 0.01 x 3 = 0.03, 0.02 x 2 = 0.04, 0.04 x 1 = 0.04 (kept monotone)
    adjusted = holm([0.04, None, 0.01, 0.02])
    assert adjusted[1] is None
    assert adjusted[0] == pytest.approx(0.04) and adjusted[2] == pytest.approx(0.03) and adjusted[3] == pytest.approx(0.04)
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def test_tables_mark_not_applicable_apart_from_not_measured_and_show_holm_p(metrics_dir: Path) -> None:
    records = load_records(metrics_dir)
    for r in records["exp-c"]:
        r["outputs"] = ["ensemble"]  # a method without branches
        r["metrics"] = {"ensemble": r["metrics"]["ensemble"]}
    text = render(build_table(TABLE, records), "md")
    header = text.splitlines()[2]
    assert "mIoU fused ↑" in header and "p (Holm)" in header
    row_c = next(line for line in text.splitlines() if line.startswith("| C |"))
    assert "n/a" in row_c  # no rgb/depth branch
    assert "n/m" in row_c  # never benchmarked: no train img/s
    assert "Holm-adjusted over the table's 2 tests" in text
    robustness = TableConfig(name="r", title="R", kind="robustness", rows={"exp-a": "A"})
    assert "Welch" not in render(build_table(robustness, records), "md")  # no p column, no p footnote


def test_a_one_seed_table_says_so_instead_of_a_std_and_a_test_over_zero_p_values(metrics_dir: Path) -> None:
    records = {name: runs[:1] for name, runs in load_records(metrics_dir).items()}
    text = render(build_table(TABLE, records), "md")
    assert "One seed per row (no std, no test)" in text
    assert "Mean ± std over" not in text and "Holm-adjusted" not in text
