"""Helpers shared by the preparers: writing one segmentation frame, the layout description, progress."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

import numpy as np
from tqdm.auto import tqdm

from asymfusion.datasets.formats import IGNORE_INDEX, seg_frame_paths, write_png
from asymfusion.datasets.files import atomic_write

T = TypeVar("T")
LAYOUT_INFO = "layout.json"


def write_seg_frame(
    out: Path, index: int, rgb: np.ndarray, mask: np.ndarray, depth: np.ndarray
) -> tuple[str, str, str]:
    """Write frame `index` (rgb uint8 HxWx3, mask uint8 HxW, depth uint16 HxW) and return its list row."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"frame {index}: rgb must be uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
    if mask.dtype != np.uint8 or depth.dtype != np.uint16:
        raise ValueError(f"frame {index}: mask must be uint8 and depth uint16, got {mask.dtype}, {depth.dtype}")
    if not rgb.shape[:2] == mask.shape == depth.shape:
        raise ValueError(f"frame {index}: sizes differ: rgb {rgb.shape}, mask {mask.shape}, depth {depth.shape}")
    paths = seg_frame_paths(index)
    for rel, array in zip(paths, (rgb, mask, depth), strict=True):
        write_png(out / rel, np.ascontiguousarray(array))
    return paths


def label_histogram(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixel counts per class id 0..num_classes-1, then the ignore count."""
    counts = np.bincount(mask.ravel(), minlength=256)
    return np.concatenate([counts[:num_classes], counts[IGNORE_INDEX : IGNORE_INDEX + 1]])


def write_layout_info(out: Path, info: dict[str, Any]) -> Path:
    """`<out>/layout.json`: what was prepared from what, with the encodings (written last, atomically)."""
    path = out / LAYOUT_INFO
    return atomic_write(path, json.dumps(info, indent=2, sort_keys=False) + "\n")


def progress(items: Iterable[T], total: int | None, desc: str, enabled: bool) -> Iterator[T]:
    yield from tqdm(items, total=total, desc=desc, unit="frame", disable=not enabled)
