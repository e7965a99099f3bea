"""The segmentation loader: one class for NYUDv2, Cityscapes and the procedural scenes (docs/design.md §7 layout).

Per-modality normalisation follows the official AsymFusion/CEN code: RGB uses ImageNet mean/std; depth PNGs are
multiplied by 1/depth_scale (1/5000 for NYUDv2, as the official code), i.e. the network sees metres, with 0 where
the sensor had no measurement - or, with `depth_encoding`, disparity or HHA (datasets/depth_encoding.py). An
evaluation under corruption (benchmark/engine/robustness.py `CorruptedView`) corrupts `load_raw`'s sample in physical
units and hands it to `sample`, so the depth is encoded and normalised after the corruption.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from asymfusion.datasets.config import SEGMENTATION_MODALITIES, TransformConfig
from asymfusion.datasets.depth_encoding import (DEPTH_ENCODINGS, ENCODING_NOTES, HhaFrames, IMAGENET_MEAN,
                                                IMAGENET_STD, encode_depth_input)
from asymfusion.datasets.formats import (
    DEPTH_SCALE,
    IGNORE_INDEX,
    DataFormatError,
    cached_decode,
    read_list,
    read_png,
)
from asymfusion.datasets.transforms import NEAREST_KEYS, JointTransform, sample_generator

COLUMN = {"rgb": 0, "target": 1, "depth": 2}


class SegmentationDataset(Dataset):
    """`<root>/<split>.txt` rows `rgb<TAB>mask<TAB>depth` -> `{"rgb": [3,H,W], "depth": [1,H,W], "target": [H,W]}`."""

    task = "segmentation"

    @classmethod
    def from_config(cls, dataset, root, data, split: str, transform, seed: int, hha_root=None
                    ) -> "SegmentationDataset":
        """The loader of an experiment's data section over one split (what `build_dataset` returns)."""
        return cls(root, split, data.modalities, dataset.num_classes, transform, seed=seed,
                   depth_scale=dataset.depth_scale, cache_decoded=data.cache_decoded,
                   depth_encoding=data.depth_encoding, hha_root=hha_root)

    @staticmethod
    def encodings(dataset, modalities: Sequence[str], depth_encoding: str = "raw") -> dict[str, str]:
        """What the network sees of each input modality (recorded in every result's protocol)."""
        known = {"rgb": "8-bit RGB / 255, ImageNet mean/std",
                 "depth": ENCODING_NOTES[depth_encoding].format(scale=dataset.depth_scale)}
        return {m: known[m] for m in modalities}

    @classmethod
    def preview(cls, dataset, root, split: str, domains) -> tuple["SegmentationDataset", dict[str, str]]:
        """Every modality and the labels, with column titles, for `asymfusion show`."""
        ds = cls(root, split, ["rgb", "depth"], dataset.num_classes, depth_scale=dataset.depth_scale)
        return ds, {"rgb": "rgb", "depth": "depth (m)", "target": "labels"}

    def __init__(
        self,
        root: str | Path,
        split: str,
        modalities: Sequence[str],
        num_classes: int,
        transform: TransformConfig | None = None,
        seed: int = 0,
        depth_scale: float = DEPTH_SCALE,
        cache_decoded: bool = False,
        depth_encoding: str = "raw",
        hha_root: str | Path | None = None,
    ) -> None:
        self.root = Path(root)
        if depth_encoding not in DEPTH_ENCODINGS:
            raise ValueError(f"unknown depth encoding {depth_encoding!r}; allowed: {', '.join(DEPTH_ENCODINGS)}")
        self.depth_encoding = depth_encoding
        uses_hha = depth_encoding == "hha" and "depth" in modalities
        if uses_hha and hha_root is None:
            raise ValueError("depth_encoding 'hha' needs hha_root (the folder `asymfusion prepare hha` wrote)")
        self.hha = HhaFrames(hha_root) if uses_hha else None
        self._decoded: dict[int, dict[str, np.ndarray]] | None = {} if cache_decoded else None
        self.depth_scale = depth_scale
        self.split = split
        self.modalities = list(modalities)
        unknown = [m for m in self.modalities if m not in SEGMENTATION_MODALITIES]
        if unknown:
            raise ValueError(f"unknown segmentation modalities {unknown}; allowed: {', '.join(SEGMENTATION_MODALITIES)}")
        self.num_classes = num_classes
        self.seed = seed
        self.epoch = 0
        list_path = self.root / f"{split}.txt"
        self.rows = read_list(list_path)
        needed = 1 + max(COLUMN[m] for m in [*self.modalities, "target"])
        for n, row in enumerate(self.rows, 1):
            if len(row) < needed:
                raise DataFormatError(
                    f"{list_path}:{n}: expected {needed} tab-separated columns (rgb, mask, depth), got {len(row)}"
                )
        self.transform = JointTransform(transform, nearest_keys=NEAREST_KEYS | {"target"}) if transform else None

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        """Augmentation depends on (seed, epoch, index): call once per epoch, as with DistributedSampler."""
        self.epoch = epoch

    def path(self, index: int, key: str) -> Path:
        return self.root / self.rows[index][COLUMN[key]]

    def load_raw(self, index: int) -> dict[str, np.ndarray]:
        """Decoded arrays in physical units: rgb uint8 HxWx3, depth float32 metres, target uint8 HxW."""
        return cached_decode(self._decoded, index, self._decode)

    def _decode(self, index: int) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for key in [*self.modalities, "target"]:
            path = self.path(index, key)
            array = read_png(path)
            if key == "rgb":
                if array.ndim == 2:
                    array = np.repeat(array[..., None], 3, axis=2)
                if array.dtype != np.uint8 or array.shape[2] != 3:
                    raise DataFormatError(f"{path}: expected an 8-bit RGB image, got {array.dtype} {array.shape}")
            elif key == "depth":
                if array.ndim != 2 or array.dtype != np.uint16:
                    raise DataFormatError(f"{path}: expected a single-channel uint16 depth PNG, got {array.dtype} {array.shape}")
                array = array.astype(np.float32) / self.depth_scale
                if self.hha is not None:
                    out["hha"] = self.hha.read(self.rows[index][COLUMN["depth"]], array.shape)
            else:
                if array.ndim != 2:
                    raise DataFormatError(f"{path}: expected a single-channel label PNG, got shape {array.shape}")
                bad = np.unique(array[(array >= self.num_classes) & (array != IGNORE_INDEX)])
                if bad.size:
                    raise DataFormatError(
                        f"{path}: label values {bad[:10].tolist()} are outside 0..{self.num_classes - 1} "
                        f"(and {IGNORE_INDEX} = ignore)"
                    )
                array = array.astype(np.uint8)
            out[key] = array
        shapes = {k: v.shape[:2] for k, v in out.items()}
        if len(set(shapes.values())) != 1:
            detail = ", ".join(f"{self.path(index, k)} {s[1]}x{s[0]}" for k, s in shapes.items())
            raise DataFormatError(f"modalities of one sample differ in size: {detail}")
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.sample(self.load_raw(index), index)

    def sample(self, raw: dict[str, np.ndarray], index: int) -> dict[str, torch.Tensor]:
        """The network's tensors from a decoded sample in physical units (`load_raw`, or a corrupted copy of it:
        benchmark/engine/robustness.py `CorruptedView`): depth encoded, RGB normalised, then the joint transform."""
        sample: dict[str, torch.Tensor] = {}
        if "rgb" in raw:
            rgb = (raw["rgb"].astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
            sample["rgb"] = torch.from_numpy(rgb.transpose(2, 0, 1).copy())
        if "depth" in self.modalities:
            sample["depth"] = torch.from_numpy(encode_depth_input(raw, self.depth_encoding))
        sample["target"] = torch.from_numpy(raw["target"].astype(np.int64))
        if self.transform is not None:
            sample = self.transform(sample, sample_generator(self.seed, self.epoch, index))
        return sample
