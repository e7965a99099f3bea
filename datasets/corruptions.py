"""Sensor corruptions at graded severities, for evaluation only (ImageNet-C / DeLiVER style).

A corruption takes one modality of a decoded sample in physical units - RGB as uint8 HxWx3, depth as float32
metres with 0 = missing - and returns it corrupted in the same units, after loading and before normalisation, so
every method sees the same corrupted inputs. Severities run 1..5. Randomness comes only from
`corruption_rng(seed, corruption, index)`: the same (seed, corruption, severity, sample) gives the same pixels for
every method, run and machine. Sizes in pixels (blur lengths, hole widths) are given for a 640-pixel-wide frame
and scale with the width, so a severity means the same on NYUDv2, Cityscapes and the procedural scenes.

RGB:  `low_light` (darkened, with sensor read noise), `over_exposure` (gain, clipped), `motion_blur` (a line
      kernel at a random angle), `gaussian_noise` (ImageNet-C's sigmas), `jpeg` (ImageNet-C's qualities),
      `missing` (rectangles covering 20..100 % of the frame set to 0).
Depth: `gaussian_noise` (the Kinect's axial noise model, sigma(z) = 0.0012 + 0.0019 (z - 0.4)^2 m [Nguyen et al.,
      3DIMPVT 2012], times 1, 2, 4, 8, 16), `holes` (Kinect-like dropout: pixels at depth discontinuities, on dark
      surfaces when RGB is loaded, and random blobs, set missing), `quantisation` (steps of 1..25 cm), `blur`
      (Gaussian, over valid pixels only), `missing` (as RGB's: missing depth is 0).

A new corruption is one decorated function: `@register_corruption("depth", "my_name")` on
`f(x, severity, rng, sample) -> x` (`sample` holds the other decoded modalities, read-only).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

from asymfusion.models.registry import Registry

__all__ = ["Corruption", "SEVERITIES", "apply_corruption", "corruption_rng", "list_corruptions",
           "parse_corruption", "register_corruption"]

SEVERITIES = (1, 2, 3, 4, 5)
REFERENCE_WIDTH = 640.0
CorruptionFn = Callable[[np.ndarray, int, np.random.Generator, dict], np.ndarray]
CORRUPTIONS: Registry[CorruptionFn] = Registry("corruption")


def register_corruption(modality: str, name: str) -> Callable[[CorruptionFn], CorruptionFn]:
    """Register `f(x, severity, rng, sample) -> x` as the corruption `modality/name`."""
    return CORRUPTIONS.register(f"{modality}/{name}")


def list_corruptions(modality: str | None = None) -> list[str]:
    """Registered corruptions as `modality/name`, optionally of one modality."""
    return [n for n in CORRUPTIONS.names() if modality is None or n.split("/")[0] == modality]


@dataclass(frozen=True)
class Corruption:
    """One corruption of one modality at one severity, e.g. Corruption("depth", "holes", 3) = `depth/holes@3`."""

    modality: str
    name: str
    severity: int

    @property
    def key(self) -> str:
        return f"{self.modality}/{self.name}@{self.severity}"


def parse_corruption(text: str) -> list[Corruption]:
    """`depth/holes@3` -> that one; `depth/holes` -> severities 1..5; `depth` -> every depth corruption x 1..5.
    Raises ValueError naming what is allowed."""
    base, _, severity = text.partition("@")
    names = [base] if "/" in base else list_corruptions(base)
    if not names or names[0] not in CORRUPTIONS.names():
        raise ValueError(f"unknown corruption {text!r}; registered: {', '.join(CORRUPTIONS.names())} (a modality "
                         "name selects all of its corruptions; @N picks severity N of 1..5)")
    if severity:
        if not severity.isdigit() or int(severity) not in SEVERITIES:
            raise ValueError(f"corruption {text!r}: severity must be one of 1..5, got {severity!r}")
        levels: tuple[int, ...] = (int(severity),)
    else:
        levels = SEVERITIES
    out = []
    for name in names:
        modality, short = name.split("/")
        out.extend(Corruption(modality, short, s) for s in levels)
    return out


def corruption_rng(seed: int, corruption: Corruption, index: int) -> np.random.Generator:
    """The generator of one corrupted sample: a function of (seed, corruption key, sample index) only."""
    digest = hashlib.sha256(corruption.key.encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little"), index])


def apply_corruption(sample: dict[str, np.ndarray], corruption: Corruption, seed: int, index: int
                     ) -> dict[str, np.ndarray]:
    """A new sample dict with `corruption.modality` corrupted; the other entries are the same arrays."""
    if corruption.modality not in sample:
        raise ValueError(f"corruption {corruption.key}: the sample has no {corruption.modality!r} "
                         f"(it has {', '.join(sorted(sample))})")
    fn = CORRUPTIONS.get(f"{corruption.modality}/{corruption.name}")
    x = sample[corruption.modality]
    out = fn(x, corruption.severity, corruption_rng(seed, corruption, index), sample)
    if out.shape != x.shape or out.dtype != x.dtype:
        raise RuntimeError(f"corruption {corruption.key} changed {x.dtype}{x.shape} into {out.dtype}{out.shape}")
    return {**sample, corruption.modality: out}


def _level(values: tuple[float, ...], severity: int) -> float:
    return values[severity - 1]


def _px(x: np.ndarray, pixels: float) -> float:
    """`pixels` of a 640-wide frame, in this frame's pixels."""
    return pixels * x.shape[1] / REFERENCE_WIDTH


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _missing_mask(shape: tuple[int, int], severity: int, rng: np.random.Generator) -> np.ndarray:
    """Axis-aligned rectangles covering about 20 % x severity of the frame (all of it at severity 5)."""
    h, w = shape
    target = 0.2 * severity
    mask = np.zeros(shape, dtype=bool)
    if severity >= 5:
        mask[:] = True
        return mask
    while mask.mean() < target:
        bh, bw = int(rng.integers(h // 8, h // 2 + 1)), int(rng.integers(w // 8, w // 2 + 1))
        y, x = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        mask[y:y + bh, x:x + bw] = True
    return mask


# ------------------------------------------------------------------------------------------------------------------
# RGB (uint8 HxWx3)
# ------------------------------------------------------------------------------------------------------------------


@register_corruption("rgb", "gaussian_noise")
def rgb_gaussian_noise(x, severity, rng, sample):
    sigma = _level((0.08, 0.12, 0.18, 0.26, 0.38), severity) * 255.0
    return _to_uint8(x + rng.normal(0.0, sigma, x.shape))


@register_corruption("rgb", "low_light")
def rgb_low_light(x, severity, rng, sample):
    gain = _level((0.5, 0.35, 0.25, 0.15, 0.08), severity)
    read_noise = _level((1.0, 1.5, 2.0, 2.5, 3.0), severity)  # in 8-bit levels, after the gain
    return _to_uint8(x * gain + rng.normal(0.0, read_noise, x.shape))


@register_corruption("rgb", "over_exposure")
def rgb_over_exposure(x, severity, rng, sample):
    gain = _level((1.5, 2.0, 2.5, 3.0, 4.0), severity)
    return _to_uint8(x.astype(np.float64) * gain + 20.0 * (severity - 1))


@register_corruption("rgb", "motion_blur")
def rgb_motion_blur(x, severity, rng, sample):
    length = max(3, int(round(_px(x, _level((5, 9, 13, 17, 21), severity)))))
    angle = float(rng.uniform(0.0, np.pi))
    kernel = np.zeros((length, length))
    c = (length - 1) / 2.0
    for t in np.linspace(-c, c, 4 * length):
        kernel[int(round(c + t * np.sin(angle))), int(round(c + t * np.cos(angle)))] = 1.0
    kernel /= kernel.sum()
    out = np.stack([ndimage.convolve(x[..., i].astype(np.float64), kernel, mode="reflect") for i in range(3)], -1)
    return _to_uint8(out)


@register_corruption("rgb", "jpeg")
def rgb_jpeg(x, severity, rng, sample):
    quality = int(_level((25, 18, 15, 10, 7), severity))
    buffer = io.BytesIO()
    Image.fromarray(x).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")).copy()


@register_corruption("rgb", "missing")
def rgb_missing(x, severity, rng, sample):
    out = x.copy()
    out[_missing_mask(x.shape[:2], severity, rng)] = 0
    return out


# ------------------------------------------------------------------------------------------------------------------
# Depth (float32 metres, 0 = missing)
# ------------------------------------------------------------------------------------------------------------------


def _keep_missing(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Missing stays missing, and no valid pixel becomes negative or zero."""
    valid = x > 0
    return np.where(valid, np.maximum(out, 1e-3), 0.0).astype(np.float32)


@register_corruption("depth", "gaussian_noise")
def depth_gaussian_noise(x, severity, rng, sample):
    scale = _level((1.0, 2.0, 4.0, 8.0, 16.0), severity)
    sigma = scale * (0.0012 + 0.0019 * (x.astype(np.float64) - 0.4) ** 2)
    return _keep_missing(x, x + rng.normal(0.0, 1.0, x.shape) * sigma)


@register_corruption("depth", "holes")
def depth_holes(x, severity, rng, sample):
    depth = x.astype(np.float64)
    valid = depth > 0
    gy, gx = np.gradient(np.where(valid, depth, np.nan))
    jump = np.nan_to_num(np.hypot(gx, gy), nan=np.inf) / np.maximum(depth, 1e-3)  # relative jump per pixel
    edges = jump > _level((0.08, 0.06, 0.045, 0.03, 0.02), severity)
    width = max(1, int(round(_px(x, _level((1, 2, 3, 4, 6), severity)))))
    holes = ndimage.binary_dilation(edges, iterations=width)
    holes &= rng.random(x.shape) < _level((0.5, 0.6, 0.7, 0.8, 0.9), severity)  # ragged, as the sensor's
    rgb = sample.get("rgb")
    if rgb is not None and rgb.shape[:2] == x.shape:  # dark (IR-absorbing) surfaces return no signal
        luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        holes |= luma < _level((10, 18, 28, 40, 55), severity)
    blobs = ndimage.gaussian_filter(rng.random(x.shape), sigma=max(1.0, _px(x, 8)))
    holes |= blobs > np.quantile(blobs, 1.0 - _level((0.01, 0.03, 0.06, 0.1, 0.15), severity))
    return np.where(holes, 0.0, x).astype(np.float32)


@register_corruption("depth", "quantisation")
def depth_quantisation(x, severity, rng, sample):
    step = _level((0.01, 0.025, 0.05, 0.1, 0.25), severity)
    return _keep_missing(x, np.round(x.astype(np.float64) / step) * step)


@register_corruption("depth", "blur")
def depth_blur(x, severity, rng, sample):
    sigma = _px(x, _level((1.0, 2.0, 3.0, 5.0, 8.0), severity))
    valid = (x > 0).astype(np.float64)
    num = ndimage.gaussian_filter(x.astype(np.float64) * valid, sigma=sigma, mode="nearest")
    den = ndimage.gaussian_filter(valid, sigma=sigma, mode="nearest")
    return _keep_missing(x, num / np.maximum(den, 1e-6))


@register_corruption("depth", "missing")
def depth_missing(x, severity, rng, sample):
    out = x.copy()
    out[_missing_mask(x.shape[:2], severity, rng)] = 0.0
    return out

