"""Qualitative grids: inputs, ground truth, each branch and the ensemble for a few validation samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from asymfusion.benchmark.tasks import get_task
from asymfusion.datasets.show import label_palette, to_display


def column_titles(modalities: list[str], keys: list[str]) -> list[str]:
    """Headings that tell inputs from predictions: "input: depth", "ground truth", "prediction: rgb branch",
    "prediction: ensemble"."""
    outputs = [f"prediction: {k}" if k == "ensemble" else f"prediction: {k} branch" for k in keys]
    return [*(f"input: {m}" for m in modalities), "ground truth", *outputs]


def _scalar_panel(ax, values: np.ndarray, metric_depth: bool):
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


@torch.no_grad()
def qualitative_grid(model: nn.Module, dataset, keys: list[str], task: str, device: torch.device, out: Path,
                     n: int = 4, num_classes: int | None = None, title: str | None = None,
                     class_names: list[str] | None = None) -> Path | None:
    """Rows: samples; columns: each input, the ground truth, then every model output (segmentation overlays).
    Depth and other one-channel inputs carry a colour bar with their range; segmentation grids a class legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from asymfusion.datasets.tasks import data_task

    n = min(n, len(dataset))
    spec = get_task(task)
    if n == 0:
        return None
    palette = label_palette(num_classes or 1)
    modalities = list(dataset.modalities)
    columns = column_titles(modalities, keys)
    depth_keys = set(data_task(task).depth_keys)
    legend = list(class_names or [])[: len(palette)] if data_task(task).label_keys else []
    fig, axes = plt.subplots(n, len(columns), figsize=(1.9 * len(columns), 1.7 * n + 0.4 + 0.3 * bool(legend)),
                             squeeze=False)
    model.eval()
    for row in range(n):
        raw = dataset.load_raw(row)
        sample = dataset[row]
        inputs = {m: sample[m][None].to(device) for m in modalities}
        outputs = model(inputs)
        for col, m in enumerate(modalities):
            if raw[m].ndim == 2:
                _scalar_panel(axes[row][col], raw[m], m in depth_keys)
            else:
                axes[row][col].imshow(to_display(m, raw[m], task), interpolation="nearest")
        images = [spec.target_panel(raw, palette)] + [spec.prediction_panel(outputs[k][0], raw, palette) for k in keys]
        for col, image in enumerate(images, start=len(modalities)):
            axes[row][col].imshow(image, interpolation="nearest")
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col], fontsize=7)
    if legend:
        handles = [plt.Rectangle((0, 0), 1, 1, color=palette[i] / 255.0) for i in range(len(legend))]
        fig.legend(handles, legend, loc="lower center", ncol=min(8, len(handles)), fontsize=6, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.05 if legend else 0, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
