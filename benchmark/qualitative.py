"""Qualitative grids: inputs, ground truth, each branch and the ensemble for a few validation samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from asymfusion.datasets.show import colorize_labels, label_palette, to_display


def _overlay(rgb: np.ndarray | None, labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    colours = colorize_labels(labels, palette)
    if rgb is None:
        return colours
    return (0.35 * rgb + 0.65 * colours).astype(np.uint8)


@torch.no_grad()
def qualitative_grid(model: nn.Module, dataset, keys: list[str], task: str, device: torch.device, out: Path,
                     n: int = 4, num_classes: int | None = None, title: str | None = None) -> Path | None:
    """Rows: samples; columns: each input, the ground truth, then every model output (segmentation overlays)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(dataset))
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
        rgb = raw.get("rgb") if task == "segmentation" else None
        images = [to_display(m, raw[m], task) for m in modalities]
        if task == "segmentation":
            images.append(_overlay(rgb, raw["target"], palette))
            images += [_overlay(rgb, outputs[k][0].argmax(0).cpu().numpy().astype(np.uint8), palette) for k in keys]
        else:
            images.append(to_display("target", raw["target"], task))
            for k in keys:
                pred = ((outputs[k][0].float().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
                images.append(to_display(k, pred[..., 0] if pred.shape[2] == 1 else pred, task))
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
