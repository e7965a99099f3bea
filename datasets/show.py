"""`asymfusion show`: a grid of every modality and the labels of a few samples, straight from the files on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asymfusion.datasets.config import DatasetConfig
from asymfusion.datasets.formats import IGNORE_INDEX
from asymfusion.datasets.build import LOADERS
from asymfusion.datasets.tasks import data_task


def label_palette(num_classes: int) -> np.ndarray:
    """Distinct colours for class ids (the PASCAL VOC bit-interleaving map); ignore pixels are drawn black."""
    palette = np.zeros((max(num_classes, 1), 3), dtype=np.uint8)
    for i in range(len(palette)):
        c, r, g, b = i + 1, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


def colorize_labels(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    out = np.zeros((*labels.shape, 3), dtype=np.uint8)
    valid = labels != IGNORE_INDEX
    out[valid] = palette[np.clip(labels[valid], 0, len(palette) - 1)]
    return out


def colorize_depth(depth: np.ndarray) -> np.ndarray:
    """Metres -> turbo colours scaled to the image's own range; missing depth (0) is black."""
    from matplotlib import colormaps

    valid = depth > 0
    out = np.zeros((*depth.shape, 3), dtype=np.uint8)
    if valid.any():
        lo, hi = float(depth[valid].min()), float(depth[valid].max())
        scaled = (depth - lo) / max(hi - lo, 1e-6)
        out[valid] = (colormaps["turbo"](scaled[valid])[:, :3] * 255).astype(np.uint8)
    return out


def to_display(key: str, array: np.ndarray, task: str, palette: np.ndarray | None = None) -> np.ndarray:
    """A decoded sample array as RGB8: labels through the palette, depth in colour, [0, 1] images scaled."""
    spec = data_task(task)
    if key in spec.label_keys and palette is not None:
        return colorize_labels(array, palette)
    if key in spec.depth_keys:
        return colorize_depth(array)
    if array.dtype == np.uint8:
        return array
    image = (np.clip(array, 0, 1) * 255).astype(np.uint8)
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


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
    fig, axes = plt.subplots(n, len(columns), figsize=(1.6 * len(columns), 1.6 * n + 0.4), squeeze=False)
    for row in range(n):
        raw = ds.load_raw(row)
        for col, (key, name) in enumerate(columns.items()):
            ax = axes[row][col]
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
