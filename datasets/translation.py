"""The translation loader: Taskonomy-named files -> CEN-preprocessed tensors in [-1, 1].

CEN's preprocessing (yikaiw/CEN utils/dataset.py), reproduced exactly: depth PNGs (uint16, 1/512 m) become
`log(1 + value)`, then every 16-bit domain is scaled to 8 bits by a fixed maximum (depth 11.1 ~ ln 65536, edge_texture
11355, edge_occlusion 11584) and quantised; everything is then mapped to [-1, 1] (Normalize(0.5, 0.5)). Values above
a domain's maximum are clipped to 255 (CEN's uint8 cast would wrap them around). Single-channel domains stay one
channel here; the model tiles them to the stem's channel count (docs/design.md §4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from asymfusion.datasets.config import TRANSLATION_MODALITIES, TransformConfig
from asymfusion.datasets.formats import DataFormatError, cached_decode, read_list, read_png
from asymfusion.datasets.transforms import JointTransform, sample_generator

# Fixed maxima CEN divides by before quantising a 16-bit domain to 8 bits.
CEN_MAXIMA = {"depth_zbuffer": 11.1, "depth_euclidean": 11.1, "edge_texture": 11355.0, "edge_occlusion": 11584.0}
LOG_DOMAINS = frozenset({"depth_zbuffer", "depth_euclidean"})


def preprocess_domain(domain: str, array: np.ndarray, path: Path) -> np.ndarray:
    """A decoded PNG -> float32 in [0, 1], HxW (one channel) or HxWx3, as CEN feeds its networks."""
    channels = TRANSLATION_MODALITIES[domain]
    if domain in CEN_MAXIMA:
        if array.ndim != 2:
            raise DataFormatError(f"{path}: expected a single-channel PNG for {domain}, got shape {array.shape}")
        value = array.astype(np.float64)
        if domain in LOG_DOMAINS:
            value = np.log1p(value)
        quantised = np.clip(value * 255.0 / CEN_MAXIMA[domain], 0, 255).astype(np.uint8)
        return quantised.astype(np.float32) / 255.0
    if array.dtype != np.uint8:
        raise DataFormatError(f"{path}: expected an 8-bit image for {domain}, got {array.dtype}")
    if channels == 1:
        return (array if array.ndim == 2 else array[..., 0]).astype(np.float32) / 255.0
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return array[..., :3].astype(np.float32) / 255.0


class TranslationDataset(Dataset):
    """`<root>/<split>.txt` of `{domain}` templates -> `{input domains..., "target": [C,H,W]}` in [-1, 1]."""

    task = "translation"
    PREVIEW = ("normal", "reshading", "depth_zbuffer", "depth_euclidean", "edge_texture", "edge_occlusion",
               "principal_curvature")

    @classmethod
    def from_config(cls, dataset, root, data, split: str, transform, seed: int, hha_root=None
                    ) -> "TranslationDataset":
        """The loader of an experiment's data section over one split (what `build_dataset` returns)."""
        return cls(root, split, data.modalities, data.target, transform, seed=seed, cache_decoded=data.cache_decoded)

    @staticmethod
    def encodings(dataset, modalities: Sequence[str], depth_encoding: str = "raw") -> dict[str, str]:
        """What the network sees of each input modality (recorded in every result's protocol): CEN's preprocessing."""
        def encoding(domain: str) -> str:
            if domain in LOG_DOMAINS:
                return f"log(1 + 16-bit PNG) scaled by 255/{CEN_MAXIMA[domain]:g} to 8 bits, then [-1, 1]"
            if domain in CEN_MAXIMA:
                return f"16-bit PNG scaled by 255/{CEN_MAXIMA[domain]:g} to 8 bits, then [-1, 1]"
            return "8-bit PNG, then [-1, 1]"

        return {m: encoding(m) for m in modalities}

    @classmethod
    def preview(cls, dataset, root, split: str, domains) -> tuple["TranslationDataset", dict[str, str]]:
        """The rgb target and the geometric domains present, with column titles, for `asymfusion show`."""
        present = [d.name for d in sorted(Path(root).iterdir()) if d.is_dir()]
        domains = domains or [d for d in cls.PREVIEW if d in present]
        return cls(root, split, domains, "rgb"), {"target": "rgb", **{d: d for d in domains}}

    def __init__(
        self,
        root: str | Path,
        split: str,
        modalities: Sequence[str],
        target: str,
        transform: TransformConfig | None = None,
        seed: int = 0,
        cache_decoded: bool = False,
    ) -> None:
        self.root = Path(root)
        self._decoded: dict[int, dict[str, np.ndarray]] | None = {} if cache_decoded else None
        self.split = split
        self.modalities = list(modalities)
        self.target = target
        for d in [*self.modalities, target]:
            if d not in TRANSLATION_MODALITIES:
                raise ValueError(f"unknown translation domain {d!r}; allowed: {', '.join(TRANSLATION_MODALITIES)}")
        list_path = self.root / f"{split}.txt"
        self.templates = [row[0] for row in read_list(list_path)]
        for n, template in enumerate(self.templates, 1):
            if "{domain}" not in template:
                raise DataFormatError(f"{list_path}:{n}: template {template!r} has no {{domain}} placeholder")
        self.seed = seed
        self.epoch = 0
        # CEN resizes every domain bilinearly (after quantisation), so no key is nearest here.
        self.transform = JointTransform(transform, nearest_keys=frozenset()) if transform else None

    def __len__(self) -> int:
        return len(self.templates)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def path(self, index: int, domain: str) -> Path:
        return self.root / self.templates[index].format(domain=domain)

    def load_raw(self, index: int) -> dict[str, np.ndarray]:
        """CEN-preprocessed arrays in [0, 1] for every input domain and the target (key "target")."""
        return cached_decode(self._decoded, index, self._decode)

    def _decode(self, index: int) -> dict[str, np.ndarray]:
        out = {}
        for domain in [*self.modalities, self.target]:
            path = self.path(index, domain)
            out["target" if domain == self.target else domain] = preprocess_domain(domain, read_png(path), path)
        shapes = {k: v.shape[:2] for k, v in out.items()}
        if len(set(shapes.values())) != 1:
            detail = ", ".join(
                f"{self.path(index, self.target if k == 'target' else k)} {s[1]}x{s[0]}" for k, s in shapes.items()
            )
            raise DataFormatError(f"domains of one sample differ in size: {detail}")
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = {}
        for key, array in self.load_raw(index).items():
            chw = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
            sample[key] = torch.from_numpy(np.ascontiguousarray(chw)) * 2.0 - 1.0
        if self.transform is not None:
            sample = self.transform(sample, sample_generator(self.seed, self.epoch, index))
        return sample
