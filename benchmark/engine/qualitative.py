"""Qualitative grids: inputs, ground truth, each branch and the ensemble for a few validation samples."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from asymfusion.benchmark.tasks import get_task
from asymfusion.datasets.colours import label_palette, to_display
from asymfusion.datasets.show import scalar_panel


def column_titles(modalities: list[str], keys: list[str]) -> list[str]:
    """Headings that tell inputs from predictions: "input: depth", "ground truth", "prediction: rgb branch",
    "prediction: ensemble"."""
    outputs = [f"prediction: {k}" if k == "ensemble" else f"prediction: {k} branch" for k in keys]
    return [*(f"input: {m}" for m in modalities), "ground truth", *outputs]


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
                scalar_panel(axes[row][col], raw[m], m in depth_keys)
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
