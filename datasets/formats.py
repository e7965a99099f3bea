"""On-disk formats shared by every dataset, real or procedural (docs/design.md §7).

One writer/reader pair per format lives here so that the renderer, the real-data preparers and the loaders can
never disagree about a scale factor or a file name.

Segmentation layout (the official AsymFusion/CEN layout)::

    <root>/rgb/NNNNNN.png      RGB8
    <root>/depth/NNNNNN.png    uint16, metres x DEPTH_SCALE (0 = no measurement)
    <root>/masks/NNNNNN.png    uint8 class ids, IGNORE_INDEX = ignore
    <root>/train.txt, val.txt  "rgb/NNNNNN.png<TAB>masks/NNNNNN.png<TAB>depth/NNNNNN.png" per line

Translation layout (Taskonomy's naming)::

    <root>/<domain>/point_<P>_view_<V>_domain_<domain>.png
    <root>/train.txt, val.txt  one template per line, "{domain}/point_<P>_view_<V>_domain_{domain}.png"
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from asymfusion.datasets.files import atomic_write

IGNORE_INDEX = 255
# Segmentation depth PNGs: uint16 metres x 5000 (NYUDv2 as the official code reads it; max 13.1 m).
DEPTH_SCALE = 5000.0
# Taskonomy depth PNGs (depth_zbuffer / depth_euclidean): uint16 in 1/512 m, 65535 = invalid.
TASKONOMY_DEPTH_SCALE = 512.0
TASKONOMY_DEPTH_INVALID = 65535
SEG_LIST_COLUMNS = ("rgb", "masks", "depth")
TRANSLATION_DOMAINS = (
    "rgb",
    "normal",
    "reshading",
    "depth_zbuffer",
    "depth_euclidean",
    "edge_texture",
    "edge_occlusion",
    "principal_curvature",
)


class DataFormatError(ValueError):
    """A dataset file is missing, unreadable or inconsistent; the message names the file."""


def seg_frame_paths(index: int) -> tuple[str, str, str]:
    """Relative (rgb, mask, depth) paths of frame `index` in the segmentation layout."""
    name = f"{index:06d}.png"
    return f"rgb/{name}", f"masks/{name}", f"depth/{name}"


def taskonomy_name(point: int, view: int, domain: str) -> str:
    return f"{domain}/point_{point}_view_{view}_domain_{domain}.png"


def taskonomy_template(point: int, view: int) -> str:
    return "{domain}/point_%d_view_%d_domain_{domain}.png" % (point, view)


def write_list(path: Path, rows: list[tuple[str, ...]] | list[str]) -> None:
    """Write a split list (tab-separated columns, one sample per line, trailing newline)."""
    lines = ["\t".join(r) if isinstance(r, tuple) else r for r in rows]
    _atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def read_list(path: Path) -> list[list[str]]:
    """Read a split list; blank lines are skipped, columns are tab-separated."""
    if not path.is_file():
        raise DataFormatError(f"split list not found: {path}")
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise DataFormatError(f"split list is empty: {path}")
    return rows


def write_png(path: Path, array: np.ndarray) -> None:
    """Write uint8 (H,W) / (H,W,3) or uint16 (H,W) as PNG, deterministically (no timestamps)."""
    if array.dtype == np.uint16:
        if array.ndim != 2:
            raise ValueError(f"uint16 PNG must be single-channel, got shape {array.shape} for {path}")
        image = Image.fromarray(array)  # mode I;16
    elif array.dtype == np.uint8:
        image = Image.fromarray(array)
    else:
        raise ValueError(f"PNG arrays must be uint8 or uint16, got {array.dtype} for {path}")
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG", compress_level=6))


def cached_decode(cache: dict[int, dict[str, np.ndarray]] | None, index: int,
                  decode: Callable[[int], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """`decode(index)`, kept in `cache` (None: no caching); callers get copies, so no transform can alter the cache."""
    if cache is None:
        return decode(index)
    if index not in cache:
        cache[index] = decode(index)
    return {key: array.copy() for key, array in cache[index].items()}


def read_png(path: Path) -> np.ndarray:
    """Read a PNG into numpy keeping its bit depth (uint16 stays uint16); names the file on failure."""
    if not path.is_file():
        raise DataFormatError(f"missing file: {path}")
    try:
        with Image.open(path) as image:
            if image.mode in ("I;16", "I;16B", "I"):
                return np.asarray(image, dtype=np.int32).astype(np.uint16)
            if image.mode == "P":
                return np.asarray(image)  # palette indices are the labels
            if image.mode not in ("L", "RGB"):
                image = image.convert("RGB")
            return np.asarray(image)
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"cannot read image {path}: {exc}") from exc


def encode_depth(depth_m: np.ndarray, scale: float = DEPTH_SCALE) -> np.ndarray:
    """Metres -> uint16 PNG values; non-finite or non-positive depth becomes 0 (no measurement)."""
    valid = np.isfinite(depth_m) & (depth_m > 0)
    out = np.zeros(depth_m.shape, dtype=np.uint16)
    out[valid] = np.clip(np.round(depth_m[valid] * scale), 1, 65535).astype(np.uint16)
    return out


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, data)
