"""Qualitative grids: inputs, ground truth, each branch and the ensemble for a few validation samples."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from asymfusion.benchmark.tasks import get_task
from asymfusion.datasets.show import label_palette, to_display


@torch.no_grad()
def qualitative_grid(model: nn.Module, dataset, keys: list[str], task: str, device: torch.device, out: Path,
                     n: int = 4, num_classes: int | None = None, title: str | None = None) -> Path | None:
    """Rows: samples; columns: each input, the ground truth, then every model output (segmentation overlays)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(dataset))
    spec = get_task(task)
    if n == 0:
        return None
    palette = label_palette(num_classes or 1)
    modalities = list(dataset.modalities)
    columns = [*modalities, "ground truth", *keys]
    fig, axes = plt.subplots(n, len(columns), figsize=(1.7 * len(columns), 1.7 * n + 0.3), squeeze=False)
    model.eval()
    for row in range(n):
        raw = dataset.load_raw(row)
        sample = dataset[row]
        inputs = {m: sample[m][None].to(device) for m in modalities}
        outputs = model(inputs)
        images = [to_display(m, raw[m], task) for m in modalities]
        images.append(spec.target_panel(raw, palette))
        images += [spec.prediction_panel(outputs[k][0], raw, palette) for k in keys]
        for col, image in enumerate(images):
            ax = axes[row][col]
            ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
