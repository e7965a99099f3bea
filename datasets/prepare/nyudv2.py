"""NYU Depth V2 (labeled set) -> the segmentation layout, encoded as the official AsymFusion/CEN code reads it.

Inputs (as `asymfusion fetch nyudv2` leaves them in `<data>/raw/nyudv2`):

* `nyu_depth_v2_labeled.mat` — MATLAB v7.3, i.e. HDF5 behind a 512-byte MATLAB header; h5py reads it directly.
  MATLAB stores column-major, so h5py sees every array transposed: `images` (N, 3, 640, 480) -> (480, 640, 3) per
  frame, `labels` / `depths` / `rawDepths` (N, 640, 480) -> (480, 640).
* `splits.mat` (MATLAB v5, scipy): `trainNdxs` (795) and `testNdxs` (654), 1-based frame indices.
* `classMapping40.mat` (MATLAB v5, scipy): `mapClass` (1, 894), the 40-class id (1..40) of each NYU label 1..894.

Output (`<data>/nyudv2`), frame file names = `%06d` of the 1-based index (CEN's naming):

* `rgb/NNNNNN.png` RGB8, the full 640x480 frame (no white-border crop: its offsets are undocumented);
* `masks/NNNNNN.png` uint8, 40 classes as 0..39, 255 = unlabeled (NYU label 0);
* `depth/NNNNNN.png` uint16, metres x 5000, 0 = no measurement; the in-painted `depths` by default (every pixel
  valid), `rawDepths` with `depth="raw"` (Kinect holes stay 0);
* `train.txt` (795 rows, official train split) / `val.txt` (654 rows, the official *test* split, which CEN and
  AsymFusion call val), rows `rgb/000003.png<TAB>masks/000003.png<TAB>depth/000003.png`;
* `layout.json` describing the above.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io

from asymfusion.datasets.fetch import read_manifest
from asymfusion.datasets.formats import DEPTH_SCALE, IGNORE_INDEX, DataFormatError, encode_depth, write_list
from asymfusion.datasets.prepare.common import progress, write_layout_info, write_seg_frame

MAT_NAME = "nyu_depth_v2_labeled.mat"
SPLITS_NAME = "splits.mat"
MAPPING_NAME = "classMapping40.mat"
NYU_FRAMES, NYU_TRAIN, NYU_VAL = 1449, 795, 654
NUM_CLASSES = 40
NUM_NYU_LABELS = 894
DEPTH_KEYS = {"filled": "depths", "raw": "rawDepths"}


def load_class_mapping(path: str | Path) -> np.ndarray:
    """Lookup table (uint8, length 895): NYU label 0..894 -> 40-class id 0..40 (0 = unlabeled)."""
    path = Path(path)
    try:
        mat = scipy.io.loadmat(path)
    except (OSError, ValueError, NotImplementedError) as exc:
        raise DataFormatError(f"cannot read the class mapping {path}: {exc}") from exc
    if "mapClass" not in mat:
        raise DataFormatError(
            f"{path}: no variable 'mapClass' (expected ankurhanda/nyuv2-meta-data's classMapping40.mat)"
        )
    mapping = np.asarray(mat["mapClass"]).ravel()
    if mapping.size != NUM_NYU_LABELS or mapping.min() < 1 or mapping.max() > NUM_CLASSES:
        raise DataFormatError(
            f"{path}: mapClass must hold {NUM_NYU_LABELS} values in 1..{NUM_CLASSES}, "
            f"got {mapping.size} values in {mapping.min()}..{mapping.max()}"
        )
    return np.concatenate([[0], mapping]).astype(np.uint8)


def load_splits(path: str | Path, n_frames: int) -> tuple[list[int], list[int]]:
    """(train, test) 1-based frame indices from the official splits.mat, checked to partition 1..n_frames."""
    path = Path(path)
    try:
        mat = scipy.io.loadmat(path)
    except (OSError, ValueError, NotImplementedError) as exc:
        raise DataFormatError(f"cannot read the split file {path}: {exc}") from exc
    for key in ("trainNdxs", "testNdxs"):
        if key not in mat:
            raise DataFormatError(f"{path}: no variable {key!r} (expected NYU's official splits.mat)")
    train = [int(i) for i in np.asarray(mat["trainNdxs"]).ravel()]
    test = [int(i) for i in np.asarray(mat["testNdxs"]).ravel()]
    every = train + test
    if len(set(every)) != len(every):
        raise DataFormatError(f"{path}: train and test indices overlap or repeat")
    if sorted(every) != list(range(1, n_frames + 1)):
        raise DataFormatError(f"{path}: train + test indices do not cover frames 1..{n_frames} exactly")
    return train, test


def labels_to_mask(labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """NYU labels (0 = unlabeled, 1..894) -> CEN masks (uint8, 0..39, 255 = unlabeled)."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= lut.size):
        raise DataFormatError(f"label values {labels.min()}..{labels.max()} outside 0..{lut.size - 1}")
    return label40_to_mask(lut[labels.astype(np.int64)])


def label40_to_mask(label40: np.ndarray) -> np.ndarray:
    """40-class labels (0 = unlabeled, 1..40) -> uint8 masks (0..39, 255 = unlabeled)."""
    label40 = np.asarray(label40)
    if label40.size and label40.max() > NUM_CLASSES:
        raise DataFormatError(f"40-class label values go up to {label40.max()}, expected 0..{NUM_CLASSES}")
    mask = label40.astype(np.int16) - 1
    mask[label40 == 0] = IGNORE_INDEX
    return mask.astype(np.uint8)


def encode_frame(rgb: np.ndarray, mask: np.ndarray, depth_m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decoded arrays (rgb uint8, mask uint8, depth float metres) -> what the layout stores."""
    depth = encode_depth(np.asarray(depth_m, dtype=np.float64), DEPTH_SCALE)
    return np.ascontiguousarray(rgb, dtype=np.uint8), mask, depth


def _dataset(f: h5py.File, key: str, path: Path) -> h5py.Dataset:
    if key not in f or not isinstance(f[key], h5py.Dataset):
        raise DataFormatError(f"{path}: no array {key!r} (expected the NYU Depth V2 labeled set)")
    return f[key]


def prepare_nyudv2(
    raw: str | Path,
    out: str | Path,
    *,
    depth: str = "filled",
    expected: tuple[int, int, int] | None = (NYU_FRAMES, NYU_TRAIN, NYU_VAL),
    progress_bar: bool = True,
) -> dict[str, Any]:
    """Write the NYUDv2 segmentation layout into `out` from the three files in `raw`; returns a summary.

    `expected` = (frames, train, val) counts to insist on (the real set: 1,449 / 795 / 654); None skips the check.
    """
    raw, out = Path(raw), Path(out)
    if depth not in DEPTH_KEYS:
        raise ValueError(f"depth must be one of {list(DEPTH_KEYS)}, got {depth!r}")
    mat_path, splits_path, mapping_path = raw / MAT_NAME, raw / SPLITS_NAME, raw / MAPPING_NAME
    for p in (mat_path, splits_path, mapping_path):
        if not p.is_file():
            raise DataFormatError(f"missing file: {p} (run `asymfusion fetch nyudv2` first)")
    lut = load_class_mapping(mapping_path)
    try:
        f = h5py.File(mat_path, "r")
    except OSError as exc:
        raise DataFormatError(f"{mat_path}: not a MATLAB v7.3 (HDF5) file: {exc}") from exc
    with f:
        images = _dataset(f, "images", mat_path)
        labels = _dataset(f, "labels", mat_path)
        depths = _dataset(f, DEPTH_KEYS[depth], mat_path)
        if images.ndim != 4 or images.shape[1] != 3:
            raise DataFormatError(f"{mat_path}: 'images' has shape {images.shape}, expected (N, 3, W, H)")
        n, _, width, height = images.shape
        for name, ds in (("labels", labels), (DEPTH_KEYS[depth], depths)):
            if ds.shape != (n, width, height):
                raise DataFormatError(f"{mat_path}: {name!r} has shape {ds.shape}, expected {(n, width, height)}")
        if expected is not None and n != expected[0]:
            raise DataFormatError(f"{mat_path}: {n} frames, expected {expected[0]}")
        train, val = load_splits(splits_path, n)
        if expected is not None and (len(train), len(val)) != expected[1:]:
            raise DataFormatError(
                f"{splits_path}: {len(train)} train / {len(val)} test frames, expected {expected[1]} / {expected[2]}"
            )
        rows: dict[int, tuple[str, str, str]] = {}
        unlabeled = 0
        for i in progress(range(n), n, "nyudv2", progress_bar):
            rgb = np.asarray(images[i]).transpose(2, 1, 0)  # (3, W, H) -> (H, W, 3)
            mask = labels_to_mask(np.asarray(labels[i]).T, lut)
            rgb8, mask8, depth16 = encode_frame(rgb, mask, np.asarray(depths[i]).T)
            rows[i + 1] = write_seg_frame(out, i + 1, rgb8, mask8, depth16)
            unlabeled += int((mask8 == IGNORE_INDEX).sum())
    write_list(out / "train.txt", [rows[i] for i in train])
    write_list(out / "val.txt", [rows[i] for i in val])
    inputs = read_manifest(raw)
    summary = {
        "source": "nyudv2",
        "frames": n,
        "size": [width, height],
        "train": len(train),
        "val": len(val),
        "num_classes": NUM_CLASSES,
        "ignore_index": IGNORE_INDEX,
        "masks": "uint8, 40-class ids 0..39 (classMapping40 id - 1), 255 = unlabeled",
        "depth": f"uint16 PNG, metres x {DEPTH_SCALE:g}, 0 = no measurement; from '{DEPTH_KEYS[depth]}'",
        "depth_scale": DEPTH_SCALE,
        "depth_source": DEPTH_KEYS[depth],
        "rgb": "RGB8 PNG, full 640x480 frames (no border crop)",
        "split": "official splits.mat: train = trainNdxs, val = testNdxs; file name = %06d of the 1-based index",
        "unlabeled_fraction": round(unlabeled / max(1, n * width * height), 6),
        "inputs": {name: inputs.get(name) for name in (MAT_NAME, SPLITS_NAME, MAPPING_NAME)},
    }
    write_layout_info(out, summary)
    return summary
