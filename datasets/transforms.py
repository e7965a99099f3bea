"""Joint geometric transforms: one random draw, applied identically to every modality and the target.

Samples are dicts of float tensors `[C, H, W]` plus an integer `target` (`[H, W]` masks for segmentation, an image
for translation). Interpolation is chosen per key: bilinear for images, nearest for depth-like maps and labels, so
no depth value or class id is ever invented by blending two surfaces. Randomness comes from an explicit
`torch.Generator`, so a run's seed (and the epoch and sample index) fixes every augmentation, whatever the number
of DataLoader workers and across a resume.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from asymfusion.datasets.config import TransformConfig
from asymfusion.datasets.formats import IGNORE_INDEX

Sample = dict[str, torch.Tensor]

# Keys resized with nearest neighbour (values are measurements or ids, not colours).
NEAREST_KEYS = frozenset({"depth", "depth_zbuffer", "depth_euclidean"})


def _resize(x: torch.Tensor, size: tuple[int, int], nearest: bool) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    squeeze = x.dim() == 2
    x4 = x[None, None] if squeeze else x[None]
    dtype = x4.dtype
    if nearest:
        out = F.interpolate(x4.float(), size=size, mode="nearest-exact")
    else:
        out = F.interpolate(x4.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    out = out.to(dtype)
    return out[0, 0] if squeeze else out[0]


def _pad_value(key: str, pad_values: dict[str, float]) -> float:
    return pad_values.get(key, 0.0)


class JointTransform:
    """Resize shorter side -> random scale -> pad -> random crop -> random h-flip, on all keys at once.

    `nearest_keys` are resized with nearest neighbour; `pad_values` gives the fill per key (segmentation masks are
    padded with the ignore index, images with 0 after normalisation, i.e. the mean colour).
    """

    def __init__(
        self,
        cfg: TransformConfig,
        nearest_keys: frozenset[str] = NEAREST_KEYS,
        pad_values: dict[str, float] | None = None,
    ) -> None:
        self.cfg = cfg
        self.nearest_keys = nearest_keys
        self.pad_values = {"target": float(IGNORE_INDEX), **(pad_values or {})}

    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> Sample:
        cfg = self.cfg
        h, w = next(iter(sample.values())).shape[-2:]
        scale = 1.0
        if cfg.resize is not None:
            scale = cfg.resize / min(h, w)
        if cfg.scale is not None:
            lo, hi = cfg.scale
            scale *= lo + (hi - lo) * torch.rand((), generator=generator).item()
        if scale != 1.0:
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            sample = {k: _resize(v, size, k in self.nearest_keys) for k, v in sample.items()}
            h, w = size
        if cfg.crop is not None:
            c = cfg.crop
            ph, pw = max(0, c - h), max(0, c - w)
            if ph or pw:
                sample = {
                    k: F.pad(v, (0, pw, 0, ph), value=_pad_value(k, self.pad_values)) for k, v in sample.items()
                }
                h, w = h + ph, w + pw
            top = int(torch.randint(0, h - c + 1, (), generator=generator))
            left = int(torch.randint(0, w - c + 1, (), generator=generator))
            sample = {k: v[..., top : top + c, left : left + c] for k, v in sample.items()}
        if cfg.hflip and torch.rand((), generator=generator).item() < 0.5:
            sample = {k: v.flip(-1) for k, v in sample.items()}
        return {k: v.contiguous() for k, v in sample.items()}


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator fixed by (run seed, epoch, sample index): worker- and resume-independent augmentation."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + epoch) * 10_000_019 + index)
    return g
