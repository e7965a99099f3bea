"""How the depth modality is fed to the network (`data.depth_encoding`), recorded in every result's protocol.

* `raw`: metric depth in metres, 0 where not measured (the official AsymFusion/CEN input);
* `disparity`: inverse depth 1/Z in 1/m, 0 where not measured;
* `hha`: Gupta et al.'s three channels (datasets/hha.py) read from the folder `asymfusion prepare hha` wrote, then
  /255 and ImageNet mean/std as RGB (the peers that feed HHA to an ImageNet stem do so). When an evaluation
  corrupts the depth (benchmark/engine/robustness.py `CorruptedView`), the HHA image is recomputed from the corrupted
  metres with the frame's camera recorded in `hha.json`, so every encoding sees the same corrupted measurement.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from asymfusion.datasets.formats import DataFormatError, read_png

__all__ = ["DEPTH_ENCODINGS", "ENCODING_NOTES", "HHA_INFO", "HhaFrames", "depth_channels", "encode_depth_input"]

DEPTH_ENCODINGS = ("raw", "disparity", "hha")
HHA_INFO = "hha.json"  # written by `prepare hha` (datasets/prepare/hha.py) beside the images: cameras, provenance
ENCODING_NOTES = {
    "raw": "depth in metres (16-bit PNG / {scale:g}), 0 where not measured",
    "disparity": "inverse depth 1/m from the 16-bit PNG / {scale:g}, 0 where not measured",
    "hha": "HHA (Gupta et al. 2014: 310/depth, height above the floor in cm, angle with gravity + 38; "
           "datasets/hha.py) as 8-bit RGB / 255, ImageNet mean/std",
}
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def depth_channels(encoding: str) -> int:
    return 3 if encoding == "hha" else 1


class HhaFrames:
    """The HHA images of one layout (`<hha_root>/NNNNNN.png`) and the camera each was computed with."""

    def __init__(self, hha_root: str | Path) -> None:
        self.root = Path(hha_root)
        info = self.root / HHA_INFO
        if not info.is_file():
            raise DataFormatError(
                f"no HHA images at {self.root} ({HHA_INFO} missing): write them with `asymfusion prepare hha` "
                "(the pipeline's hha-<dataset> stage) before training with data.depth_encoding: hha")
        self.info = json.loads(info.read_text())
        self.cameras = self.info.get("cameras", {})

    def read(self, depth_rel: str, shape: tuple[int, int]) -> np.ndarray:
        path = self.root / Path(depth_rel).name
        array = read_png(path)
        if array.dtype != np.uint8 or array.shape != (*shape, 3):
            raise DataFormatError(f"{path}: expected an 8-bit HHA image of {shape[1]}x{shape[0]}x3, got "
                                  f"{array.dtype} {array.shape}")
        return array


def encode_depth_input(raw: dict[str, np.ndarray], encoding: str) -> np.ndarray:
    """The depth input as float32 [C, H, W] from the decoded sample (`depth` in metres, `hha` uint8 HxWx3)."""
    depth = raw["depth"]
    if encoding == "raw":
        return depth[None].astype(np.float32, copy=False)
    if encoding == "disparity":
        return np.where(depth > 0, 1.0 / np.where(depth > 0, depth, 1.0), 0.0).astype(np.float32)[None]
    if encoding == "hha":
        x = (raw["hha"].astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        return np.ascontiguousarray(x.transpose(2, 0, 1))
    raise ValueError(f"unknown depth encoding {encoding!r}; allowed: {', '.join(DEPTH_ENCODINGS)}")
