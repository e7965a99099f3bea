"""`asymfusion show`: a grid of every modality and the labels of a few samples, straight from the files on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asymfusion.datasets.build import LOADERS
from asymfusion.datasets.colours import colorize_depth, colorize_labels, label_palette, to_display
from asymfusion.datasets.config import DatasetConfig
from asymfusion.datasets.tasks import data_task

__all__ = ["colorize_depth", "colorize_labels", "label_palette", "scalar_panel", "show_grid", "to_display"]


def scalar_panel(ax, values: np.ndarray, metric_depth: bool):
    """A one-channel input in colour with its range on a colour bar: depth in metres (0 = missing, drawn black),
    other domains in their preprocessed [0, 1] units."""
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("turbo" if metric_depth else "gray").with_extremes(bad="black")
    shown = np.ma.masked_where(values <= 0, values) if metric_depth else values
    valid = values[values > 0] if metric_depth else values
    lo, hi = (float(valid.min()), float(valid.max())) if valid.size else (0.0, 1.0)
    image = ax.imshow(shown, cmap=cmap, vmin=lo, vmax=max(hi, lo + 1e-6), interpolation="nearest")
    bar = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    bar.ax.tick_params(labelsize=5)
    bar.set_label("m" if metric_depth else "[0, 1]", fontsize=5)


def show_grid(
    dataset: DatasetConfig,
    root: Path,
    out: Path,
    *,
    n: int = 8,
    split: str = "train",
    domains: list[str] | None = None,
    title: str | None = None,
) -> Path:
    """Write a PNG grid: one row per sample, one column per modality plus the labels/target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = data_task(dataset.task)
    ds, columns = LOADERS[dataset.task].preview(dataset, root, split, domains)
    palette = label_palette(dataset.num_classes or 1)
    n = min(n, len(ds))
    fig, axes = plt.subplots(n, len(columns), figsize=(1.9 * len(columns), 1.6 * n + 0.4), squeeze=False)
    for row in range(n):
        raw = ds.load_raw(row)
        for col, (key, name) in enumerate(columns.items()):
            ax = axes[row][col]
            if key in spec.depth_keys or (raw[key].ndim == 2 and key not in spec.label_keys):
                scalar_panel(ax, raw[key], key in spec.depth_keys)  # with a colour bar of its range
            else:
                ax.imshow(to_display(key, raw[key], dataset.task, palette), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=8)
    names = spec.legend(dataset)
    if names:
        handles = [plt.Rectangle((0, 0), 1, 1, color=palette[i] / 255.0) for i in range(len(names))]
        fig.legend(handles, names, loc="lower center", ncol=min(6, len(handles)), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.06 if names else 0, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
