"""Metric JSON files -> the suite's summary plots (matplotlib). Like the tables, plots never re-run a model.

- `bars-<table>.png`: the main metric of every row, mean with std error bars (one per table);
- `params-vs-<metric>.png`: parameters against the main metric, rows of tables with a parameter column;
- `curves-<table>.png`: validation metric per epoch (mean over seeds, shaded std) from the training histories;
- `robustness-<table>.png`: grouped bars, all inputs vs each modality blanked;
- `severity-<table>.png` (tables of kind corruptions): the main metric against corruption severity (0 = clean), one
  line per row and one panel per corrupted modality, averaged over that modality's corruptions, band = std over seeds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from asymfusion.benchmark.config import TableConfig
from asymfusion.benchmark.report.tables import build_table, load_records
from asymfusion.benchmark.tasks import get_task


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def bars(frame, out: Path) -> Path:
    plt = _pyplot()
    main = frame.attrs["main"]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(frame) + 1.5), 3.4))
    x = np.arange(len(frame))
    ax.bar(x, frame[main], yerr=frame[f"{main} std"].fillna(0), capsize=3, color="#4c72b0")
    ax.set_xticks(x, frame["row"], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(main)
    finite = frame[main][np.isfinite(frame[main])]
    if len(finite):
        lo = max(0.0, float(finite.min()) - 2 * float(frame[f"{main} std"].fillna(0).max()) - 2)
        main_col = next(c for c in frame.attrs["columns"] if c.name == main)
        ax.set_ylim(bottom=lo if main_col.higher_is_better else 0)
    ax.set_title(frame.attrs["title"], fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out)


def params_scatter(frame, out: Path) -> Path:
    plt = _pyplot()
    main = frame.attrs["main"]
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    ax.errorbar(frame["params (M)"], frame[main], yerr=frame[f"{main} std"].fillna(0), fmt="o", capsize=3)
    for _, row in frame.iterrows():
        ax.annotate(row["row"], (row["params (M)"], row[main]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("parameters (M)")
    ax.set_ylabel(main)
    ax.set_title(f"{frame.attrs['title']}: size vs quality", fontsize=9)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def curves(table: TableConfig, groups: dict[str, list[dict[str, Any]]], out: Path) -> Path | None:
    plt = _pyplot()
    tasks = {r["task"] for e in table.rows for r in groups.get(e, [])}
    if len(tasks) != 1:
        return None
    key, label = get_task(tasks.pop()).curve()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    drawn = False
    for experiment, label in table.rows.items():
        series = [[row.get(key, math.nan) for row in r["history"]] for r in groups.get(experiment, [])]
        series = [s for s in series if s]
        if not series:
            continue
        length = min(map(len, series))
        values = np.array([s[:length] for s in series], dtype=float)
        validated = ~np.isnan(values).all(axis=0)  # with train.eval_every > 1 some epochs have no validation
        if not validated.any():
            continue
        values, epochs = values[:, validated], np.arange(1, length + 1)[validated]
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
        ax.plot(epochs, mean, marker="o", markersize=3, label=label)
        ax.fill_between(epochs, mean - std, mean + std, alpha=0.15)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.legend(fontsize=6, ncol=2)
    ax.set_title(f"{table.title}: training curves", fontsize=9)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def robustness(frame, out: Path) -> Path:
    plt = _pyplot()
    cols = [c for c in frame.attrs["columns"] if c.name.startswith("mIoU")]
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(frame) + 1.5), 3.4))
    width = 0.8 / len(cols)
    x = np.arange(len(frame))
    for i, col in enumerate(cols):
        ax.bar(x + i * width - 0.4 + width / 2, frame[col.name], width, yerr=frame[f"{col.name} std"].fillna(0),
               capsize=2, label=col.name)
    ax.set_xticks(x, frame["row"], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("mIoU (fused)")
    ax.legend(fontsize=7)
    ax.set_title(frame.attrs["title"], fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out)


def severity(table: TableConfig, groups: dict[str, list[dict[str, Any]]], out: Path) -> Path | None:
    from asymfusion.benchmark.report.robustness import severity_curves

    plt = _pyplot()
    rows = [e for e in table.rows if groups.get(e)]
    panels = [(m, severity_curves(groups, rows, m)) for m in ("rgb", "depth")]
    panels = [(m, c) for m, c in panels if any(len(levels) > 1 for levels in c.values())]
    if not panels:
        return None
    name = get_task(groups[rows[0]][0]["task"]).main_metric
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 2.2, 3.4), sharey=True, squeeze=False)
    seeds = sorted({n for _, c in panels for levels in c.values() for _, _, n in levels.values()})
    for ax, (modality, curves_) in zip(axes[0], panels):
        for experiment in rows:
            levels = curves_[experiment]
            if len(levels) < 2:
                continue
            x = np.array(sorted(levels))
            mean = np.array([levels[k][0] for k in x])
            std = np.nan_to_num(np.array([levels[k][1] for k in x]))
            ax.plot(x, mean, marker="o", markersize=3, label=table.rows[experiment])
            ax.fill_between(x, mean - std, mean + std, alpha=0.15)
        ax.set_xticks(range(6), ["clean", "1", "2", "3", "4", "5"])
        ax.set_xlabel(f"severity ({modality} corruptions, mean over them)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fused mIoU (%)" if name == "miou" else f"fused {name}")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    n = f"n = {seeds[0]}" if len(seeds) == 1 else f"n = {seeds[0]}-{seeds[-1]}"
    fig.suptitle(f"{table.title}: mean ± std over seeds ({n})", fontsize=9)
    return _save(fig, out)


def write_plots(tables: list[TableConfig], metrics_dir: Path, out_dir: Path) -> list[Path]:
    groups = load_records(metrics_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for table in tables:
        frame = build_table(table, groups)
        written.append(bars(frame, out_dir / f"bars-{table.name}.png"))
        if "params (M)" in frame.columns:  # tables with a parameter count: size against quality
            metric = get_task(frame.attrs["task"]).main_metric
            written.append(params_scatter(frame, out_dir / f"params-vs-{metric}-{table.name}.png"))
        if table.kind == "robustness":
            written.append(robustness(frame, out_dir / f"robustness-{table.name}.png"))
        if table.kind == "corruptions":
            plot = severity(table, groups, out_dir / f"severity-{table.name}.png")
            if plot is not None:
                written.append(plot)
        curve = curves(table, groups, out_dir / f"curves-{table.name}.png")
        if curve is not None:
            written.append(curve)
    return written
