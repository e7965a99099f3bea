"""Sample arrays as RGB8 images: class ids through a palette, metric depth in colour, [0, 1] images scaled.

Shared by `asymfusion show` (datasets/show.py), the tasks' qualitative panels and the evaluation grids; kept apart
from show.py so that editing the `show` figure never touches the code a training runs.
"""

from __future__ import annotations

import numpy as np

from asymfusion.datasets.formats import IGNORE_INDEX
from asymfusion.datasets.tasks import data_task

__all__ = ["colorize_depth", "colorize_labels", "label_palette", "to_display"]


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
