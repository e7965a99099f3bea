"""Cityscapes (fine annotations + disparity) -> the segmentation layout.

Inputs (extracted by `asymfusion fetch cityscapes` into `<data>/raw/cityscapes`, Cityscapes' own layout):
`leftImg8bit/<split>/<city>/<name>_leftImg8bit.png`, `gtFine/<split>/<city>/<name>_gtFine_labelIds.png`,
`disparity/<split>/<city>/<name>_disparity.png` and `camera/<split>/<city>/<name>_camera.json`.

Output (`<data>/cityscapes`):

* `rgb/NNNNNN.png` — the leftImg8bit PNG, byte-for-byte (2048x1024 RGB8);
* `masks/NNNNNN.png` — uint8 train ids 0..18 (the 19 evaluated classes of cityscapesscripts' `labels.py`),
  every other label id -> 255 (ignore);
* `depth/NNNNNN.png` — uint16 depth, **metres x `depth_scale`** (default 256, i.e. 1/256 m steps up to 255.99 m;
  farther points saturate at 65535), 0 = invalid. Depth comes from the disparity PNG p and the frame's own camera
  file: for p > 0, d = (p - 1) / 256 px and depth = baseline x fx / d; p = 0 (and p = 1, d = 0) are invalid;
* `train.txt` (2,975 rows) / `val.txt` (500 rows); frames are numbered 1.. over train then val, each sorted by
  city and name; `frames.tsv` maps every number back to its Cityscapes name;
* `layout.json` with the depth scale. Note that SegmentationDataset divides depth PNGs by 5000 (NYUDv2's scale):
  with the default scale the network sees metres x 256 / 5000 (0.05 per metre, i.e. 0..13.1 over 0..256 m).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from asymfusion.datasets.fetch import read_manifest
from asymfusion.datasets.formats import (
    IGNORE_INDEX,
    DataFormatError,
    encode_depth,
    read_png,
    seg_frame_paths,
    write_list,
    write_png,
)
from asymfusion.datasets.prepare.common import progress, write_layout_info
from asymfusion.datasets.files import atomic_write

SPLITS = ("train", "val")
EXPECTED_COUNTS = {"train": 2975, "val": 500}
NUM_CLASSES = 19
CITYSCAPES_DEPTH_SCALE = 256.0
# labelId -> trainId for the 19 evaluated classes (cityscapesscripts.helpers.labels); all others -> 255.
LABEL_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
CLASS_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip


def train_id_lut() -> np.ndarray:
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label_id, train_id in LABEL_TO_TRAIN_ID.items():
        lut[label_id] = train_id
    return lut


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    if label_ids.dtype != np.uint8:
        if label_ids.size and (label_ids.min() < 0 or label_ids.max() > 255):
            raise DataFormatError(f"label ids {label_ids.min()}..{label_ids.max()} outside 0..255")
        label_ids = label_ids.astype(np.uint8)
    return train_id_lut()[label_ids]


def read_camera(path: str | Path) -> tuple[float, float]:
    """(baseline in metres, fx in pixels) from a Cityscapes `*_camera.json`."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"missing file: {path}")
    try:
        camera = json.loads(path.read_text())
        baseline, fx = float(camera["extrinsic"]["baseline"]), float(camera["intrinsic"]["fx"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataFormatError(f"{path}: expected extrinsic.baseline and intrinsic.fx ({exc})") from exc
    if not (baseline > 0 and fx > 0):
        raise DataFormatError(f"{path}: baseline {baseline} and fx {fx} must be positive")
    return baseline, fx


def disparity_to_depth(disparity: np.ndarray, baseline: float, fx: float) -> np.ndarray:
    """Cityscapes 16-bit disparity PNG values -> depth in metres (float64), NaN where invalid."""
    p = disparity.astype(np.float64)
    d = (p - 1.0) / 256.0
    depth = np.full(p.shape, np.nan)
    valid = d > 0  # p = 0 is "no disparity"; p = 1 would mean d = 0 (infinitely far)
    depth[valid] = baseline * fx / d[valid]
    return depth


def find_frames(raw: Path, split: str) -> list[tuple[str, str]]:
    """Sorted (city, name) pairs of a split, from the leftImg8bit folder."""
    folder = raw / "leftImg8bit" / split
    suffix = "_leftImg8bit.png"
    return sorted((p.parent.name, p.name[: -len(suffix)]) for p in folder.glob(f"*/*{suffix}"))


def frame_files(raw: Path, split: str, city: str, name: str) -> dict[str, Path]:
    return {
        "rgb": raw / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png",
        "labels": raw / "gtFine" / split / city / f"{name}_gtFine_labelIds.png",
        "disparity": raw / "disparity" / split / city / f"{name}_disparity.png",
        "camera": raw / "camera" / split / city / f"{name}_camera.json",
    }


def _copy_rgb(src: Path, dst: Path) -> tuple[int, int]:
    """Copy an RGB8 PNG byte-for-byte (re-encode anything else); returns (width, height)."""
    try:
        with Image.open(src) as image:
            mode, size, fmt = image.mode, image.size, image.format
    except OSError as exc:
        raise DataFormatError(f"cannot read image {src}: {exc}") from exc
    if fmt == "PNG" and mode == "RGB":
        atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))
    else:
        array = read_png(src)
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        if array.dtype != np.uint8:
            raise DataFormatError(f"{src}: expected an 8-bit image, got {array.dtype}")
        write_png(dst, np.ascontiguousarray(array[..., :3]))
    return size


def prepare_frame(
    files: dict[str, Path], out: Path, index: int, depth_scale: float = CITYSCAPES_DEPTH_SCALE
) -> tuple[str, str, str]:
    """One Cityscapes frame -> layout frame `index`; returns its list row."""
    for p in files.values():
        if not p.is_file():
            raise DataFormatError(f"missing file: {p}")
    label_ids = read_png(files["labels"])
    disparity = read_png(files["disparity"])
    if label_ids.ndim != 2:
        raise DataFormatError(f"{files['labels']}: expected a single-channel labelIds PNG, got {label_ids.shape}")
    if disparity.ndim != 2 or disparity.dtype != np.uint16:
        raise DataFormatError(
            f"{files['disparity']}: expected a 16-bit disparity PNG, got {disparity.dtype} {disparity.shape}"
        )
    baseline, fx = read_camera(files["camera"])
    mask = label_ids_to_train_ids(label_ids)
    depth = encode_depth(disparity_to_depth(disparity, baseline, fx), depth_scale)
    rgb_rel, mask_rel, depth_rel = seg_frame_paths(index)
    width, height = _copy_rgb(files["rgb"], out / rgb_rel)
    if (height, width) != mask.shape or mask.shape != depth.shape:
        raise DataFormatError(
            f"sizes differ: {files['rgb']} {width}x{height}, {files['labels']} {mask.shape[1]}x{mask.shape[0]}, "
            f"{files['disparity']} {depth.shape[1]}x{depth.shape[0]}"
        )
    write_png(out / mask_rel, mask)
    write_png(out / depth_rel, depth)
    return rgb_rel, mask_rel, depth_rel


def prepare_cityscapes(
    raw: str | Path,
    out: str | Path,
    *,
    depth_scale: float = CITYSCAPES_DEPTH_SCALE,
    expected: dict[str, int] | None = EXPECTED_COUNTS,
    progress_bar: bool = True,
) -> dict[str, Any]:
    """Write the Cityscapes segmentation layout into `out` from the extracted packages in `raw`; returns a summary.

    `expected` = frames per split to insist on (2,975 train / 500 val); None skips the check.
    """
    raw, out = Path(raw), Path(out)
    if not depth_scale > 0 or depth_scale * 0.5 > 65535:
        raise ValueError(f"depth_scale must be positive (and useful as uint16 steps), got {depth_scale}")
    for folder in ("leftImg8bit", "gtFine", "disparity", "camera"):
        if not (raw / folder).is_dir():
            raise DataFormatError(f"missing folder: {raw / folder} (run `asymfusion fetch cityscapes` first)")
    frames = {split: find_frames(raw, split) for split in SPLITS}
    if expected is not None:
        for split, want in expected.items():
            if len(frames[split]) != want:
                raise DataFormatError(
                    f"{raw / 'leftImg8bit' / split}: {len(frames[split])} frames, expected {want}"
                )
    rows: dict[str, list[tuple[str, str, str]]] = {split: [] for split in SPLITS}
    index_rows = ["index\tsplit\tcity\tname"]
    jobs = [(split, city, name) for split in SPLITS for city, name in frames[split]]
    for index, (split, city, name) in enumerate(progress(jobs, len(jobs), "cityscapes", progress_bar), 1):
        rows[split].append(prepare_frame(frame_files(raw, split, city, name), out, index, depth_scale))
        index_rows.append(f"{index:06d}\t{split}\t{city}\t{name}")
    (out / "frames.tsv").write_text("\n".join(index_rows) + "\n")
    for split in SPLITS:
        write_list(out / f"{split}.txt", rows[split])
    inputs = read_manifest(raw)
    summary = {
        "source": "cityscapes",
        "train": len(rows["train"]),
        "val": len(rows["val"]),
        "num_classes": NUM_CLASSES,
        "class_names": list(CLASS_NAMES),
        "ignore_index": IGNORE_INDEX,
        "masks": "uint8 train ids 0..18 from gtFine labelIds, every other id -> 255",
        "depth": (
            f"uint16 PNG, metres x {depth_scale:g} (max {65535 / depth_scale:.2f} m, farther saturates), 0 = invalid; "
            "depth = baseline * fx / ((p - 1) / 256) from the disparity PNG p and the frame's camera json"
        ),
        "depth_scale": depth_scale,
        "rgb": "leftImg8bit PNG copied byte-for-byte",
        "names": "frames.tsv maps NNNNNN to split, city and Cityscapes name",
        "inputs": {k: v for k, v in inputs.items() if k.endswith(".zip")},
    }
    write_layout_info(out, summary)
    return summary
