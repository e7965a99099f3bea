"""Metric JSON files -> the suite's summary plots (matplotlib). Like the tables, plots never re-run a model.

- `bars-<table>.png`: the main metric of every row, mean with std error bars (one per table);
- `params-vs-<metric>.png`: parameters against the main metric, rows of tables with a parameter column;
- `curves-<table>.png`: validation metric per epoch (mean over seeds, shaded std) from the training histories;
- `robustness-<table>.png`: grouped bars, all inputs vs each modality blanked;
- `severity-<table>.png` (tables of kind corruptions): the main metric against corruption severity (0 = clean), one
  line per row and one panel per corrupted modality, averaged over that modality's corruptions, band = std over seeds.
"""

from __future__ import annotations

import json
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


def _seeds_note(frame) -> str:
    counts = sorted({int(n) for n in frame["seeds"]})
    n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"bars: mean ± std over n = {n} seeds; dots: each seed"


def _axis_label(frame, name: str) -> str:
    col = next((c for c in frame.attrs["columns"] if c.name == name), None)
    return f"{name} (lower is better)" if col is not None and col.higher_is_better is False else name


def _seed_dots(ax, x: float, values: list[float], spread: float) -> None:
    if values:
        offsets = np.linspace(-spread, spread, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(x + offsets, values, s=9, color="black", zorder=3, linewidths=0)


def bars(frame, out: Path) -> Path:
    """The main metric per row from zero, with each seed as a dot."""
    plt = _pyplot()
    main = frame.attrs["main"]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(frame) + 1.5), 3.6))
    x = np.arange(len(frame))
    ax.bar(x, frame[main], yerr=frame[f"{main} std"].fillna(0), capsize=3, color="#8fa8cf", edgecolor="#4c72b0")
    for i, experiment in enumerate(frame["experiment"]):
        _seed_dots(ax, x[i], frame.attrs["values"][experiment][main], 0.12)
    ax.set_xticks(x, frame["row"], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(_axis_label(frame, main))
    ax.set_ylim(bottom=0)
    ax.set_title(f"{frame.attrs['title']}\n{_seeds_note(frame)}", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out)


def params_scatter(frame, out: Path) -> Path:
    """Parameters against the main metric: one marker per row, named in a legend beside the axes (labels written
    next to the points overlapped where rows have the same size)."""
    plt = _pyplot()
    main = frame.attrs["main"]
    fig, ax = plt.subplots(figsize=(6.6, 3.6))
    markers = "os^vDPX*<>ph"
    for i, (_, row) in enumerate(frame.iterrows()):
        ax.errorbar(row["params (M)"], row[main], yerr=0 if math.isnan(row[f"{main} std"]) else row[f"{main} std"],
                    fmt=markers[i % len(markers)], color=f"C{i % 10}", capsize=3, markersize=6, label=row["row"])
    ax.set_xlabel("parameters (M)")
    ax.set_ylabel(_axis_label(frame, main))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    ax.set_title(f"{frame.attrs['title']}: size vs quality\nmean ± std over seeds", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def _validation_history(record: dict[str, Any], history_dir: Path | None) -> list[dict[str, Any]]:
    """Every validated epoch of the run (`<results>/history/<run>.val.json`, written by train); the record's own
    history stops at the checkpoint it evaluated (best.pt: the best epoch)."""
    path = None if history_dir is None else history_dir / f"{record['experiment']}-s{record['seed']}.val.json"
    if path is not None and path.is_file():
        return json.loads(path.read_text())
    return record["history"]


def still_improving(table: TableConfig, groups: dict[str, list[dict[str, Any]]], history_dir: Path | None = None
                    ) -> list[str]:
    """Row labels whose seed-mean validation curve is best at its last validated epoch and better there than at
    the one before: still rising (or, for L1, falling) when training stopped."""
    rising = []
    for experiment, row_label in table.rows.items():
        records = groups.get(experiment, [])
        if not records:
            continue
        task = get_task(records[0]["task"])
        key = task.curve()[0]
        series = [{row.get("epoch", i + 1): row[key] for i, row in enumerate(_validation_history(r, history_dir))
                   if isinstance(row.get(key), (int, float))} for r in records]
        epochs = sorted(set.intersection(*(set(s) for s in series))) if all(series) else []
        if len(epochs) < 2:
            continue
        mean = [float(np.mean([s[e] for s in series])) * (1 if task.higher_is_better else -1) for e in epochs]
        if mean[-1] == max(mean) and mean[-1] > mean[-2]:
            rising.append(row_label)
    return rising


def curves(table: TableConfig, groups: dict[str, list[dict[str, Any]]], out: Path,
           history_dir: Path | None = None) -> Path | None:
    plt = _pyplot()
    tasks = {r["task"] for e in table.rows for r in groups.get(e, [])}
    if len(tasks) != 1:
        return None
    task = get_task(tasks.pop())
    key, label = task.curve()
    if not task.higher_is_better:
        label += " (lower is better)"
    fig, ax = plt.subplots(figsize=(6.8, 3.6))
    drawn = False
    for experiment, row_label in table.rows.items():
        series = [{row.get("epoch", i + 1): row[key] for i, row in enumerate(_validation_history(r, history_dir))
                   if isinstance(row.get(key), (int, float))} for r in groups.get(experiment, [])]
        series = [s for s in series if s]
        if not series:
            continue
        epochs = np.array(sorted(set.intersection(*(set(s) for s in series))))  # validated in every seed
        if not len(epochs):
            continue
        values = np.array([[s[e] for e in epochs] for s in series], dtype=float)
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
        ax.plot(epochs, mean, marker="o", markersize=3, label=row_label)
        ax.fill_between(epochs, mean - std, mean + std, alpha=0.15)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    ax.set_title(f"{table.title}: training curves\nmean over seeds, band ± std", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def robustness(frame, out: Path) -> Path:
    """Grouped bars per row: all inputs, then each modality blanked; seeds as dots, legend beside the axes."""
    plt = _pyplot()
    cols = [c for c in frame.attrs["columns"] if c.name.startswith("mIoU")]
    fig, ax = plt.subplots(figsize=(max(5.5, 0.9 * len(frame) + 3.0), 3.6))
    width = 0.8 / len(cols)
    x = np.arange(len(frame))
    for i, col in enumerate(cols):
        at = x + i * width - 0.4 + width / 2
        ax.bar(at, frame[col.name], width, yerr=frame[f"{col.name} std"].fillna(0), capsize=2, label=col.name,
               color=f"C{i}", alpha=0.75)
        for j, experiment in enumerate(frame["experiment"]):
            _seed_dots(ax, at[j], frame.attrs["values"][experiment][col.name], width * 0.25)
    ax.set_xticks(x, frame["row"], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("mIoU (fused)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    ax.set_title(f"{frame.attrs['title']}\n{_seeds_note(frame)}", fontsize=8)
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
        curve = curves(table, groups, out_dir / f"curves-{table.name}.png", metrics_dir.parent / "history")
        if curve is not None:
            written.append(curve)
    return written
