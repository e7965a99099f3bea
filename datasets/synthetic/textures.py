"""Procedural albedo textures, grouped into families.

A *family* is a probability law over texture parameters (pattern, colours, period, orientation). Classes that must be
told apart by geometry alone draw from the SAME family, so their appearance distributions are identical; classes that
must be told apart by appearance alone draw from different families. Colour ranges of different families overlap on
purpose, so no single colour statistic identifies a family: pattern, contrast and colour together do.

Textures are evaluated in surface coordinates measured in metres, so a pattern keeps its physical size whatever the
image resolution. Everything is a pure function of the parameters (including an integer hash seed for the noise), which
keeps rendering deterministic and independent of evaluation order.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

PATTERNS = ("plain", "noise", "stripes", "checker", "dots", "planks", "grid", "window")


@dataclass(frozen=True)
class FamilySpec:
    """Law of one texture family: pattern probabilities and colour/period ranges (HSV in [0, 1])."""

    name: str
    patterns: tuple[tuple[str, float], ...]
    hues: tuple[tuple[float, float], ...]
    sat: tuple[float, float]
    val: tuple[float, float]
    contrast: tuple[float, float]
    period: tuple[float, float]


@dataclass(frozen=True)
class Texture:
    """One sampled texture: everything `evaluate_texture` needs."""

    family: str
    pattern: str
    c0: tuple[float, float, float]
    c1: tuple[float, float, float]
    period: float
    angle: float
    seed: int


FAMILIES: dict[str, FamilySpec] = {
    spec.name: spec
    for spec in (
        # A: floors: wood planks, tiles, speckled stone; browns and greys.
        FamilySpec("A", (("planks", 0.45), ("grid", 0.3), ("noise", 0.25)),
                   ((0.03, 0.13), (0.0, 1.0)), (0.05, 0.55), (0.25, 0.7), (0.06, 0.25), (0.18, 0.6)),
        # B: rugs: busy, high-contrast, any hue.
        FamilySpec("B", (("stripes", 0.35), ("checker", 0.25), ("dots", 0.2), ("noise", 0.2)),
                   ((0.0, 1.0),), (0.3, 0.85), (0.25, 0.8), (0.25, 0.5), (0.14, 0.45)),
        # C: plaster / paint / faint wallpaper (walls AND ceilings).
        FamilySpec("C", (("plain", 0.45), ("noise", 0.35), ("stripes", 0.2)),
                   ((0.0, 1.0),), (0.0, 0.3), (0.5, 0.92), (0.03, 0.12), (0.2, 0.8)),
        # D: furniture fronts: wood or painted boards with seams (panels AND cabinets).
        FamilySpec("D", (("planks", 0.5), ("grid", 0.25), ("plain", 0.25)),
                   ((0.03, 0.13), (0.0, 1.0)), (0.15, 0.7), (0.25, 0.8), (0.08, 0.3), (0.12, 0.5)),
        # E: toys / packaging: saturated patterns (boxes AND balls).
        FamilySpec("E", (("checker", 0.3), ("stripes", 0.3), ("dots", 0.2), ("noise", 0.2)),
                   ((0.0, 1.0),), (0.35, 0.9), (0.3, 0.9), (0.2, 0.5), (0.12, 0.35)),
        # F: stone / concrete / marble (pillars).
        FamilySpec("F", (("noise", 0.6), ("plain", 0.2), ("stripes", 0.2)),
                   ((0.0, 1.0),), (0.0, 0.2), (0.4, 0.85), (0.1, 0.3), (0.15, 0.6)),
        # G: painted metal / plastic with bands or dots (bins).
        FamilySpec("G", (("stripes", 0.4), ("plain", 0.3), ("dots", 0.3)),
                   ((0.0, 1.0),), (0.35, 0.9), (0.25, 0.8), (0.2, 0.5), (0.08, 0.3)),
        # H: windows: bright sky gradient behind dark mullions.
        FamilySpec("H", (("window", 1.0),),
                   ((0.5, 0.66),), (0.05, 0.45), (0.85, 1.0), (0.3, 0.6), (0.3, 0.7)),
    )
}


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (float(r), float(g), float(b))


def sample_texture(family: str, rng: np.random.Generator) -> Texture:
    """Draw one texture from `family`'s law (see FAMILIES)."""
    spec = FAMILIES[family]
    names = [p for p, _ in spec.patterns]
    probs = np.array([w for _, w in spec.patterns])
    pattern = names[int(rng.choice(len(names), p=probs / probs.sum()))]
    lo, hi = spec.hues[int(rng.integers(len(spec.hues)))]
    h0 = rng.uniform(lo, hi)
    s0 = rng.uniform(*spec.sat)
    v0 = rng.uniform(*spec.val)
    contrast = rng.uniform(*spec.contrast)
    if rng.random() < 0.5:  # same hue, other value
        sign = -1.0 if v0 - contrast >= spec.val[0] - 0.15 else 1.0
        h1, s1, v1 = h0 + rng.normal(0, 0.02), s0 * rng.uniform(0.7, 1.2), v0 + sign * contrast
    else:  # other hue (hue jitter within the family's saturation/value law)
        h1 = h0 + rng.choice([-1, 1]) * rng.uniform(0.05, 0.45)
        s1 = rng.uniform(*spec.sat)
        v1 = v0 + rng.choice([-1, 1]) * contrast
    if family == "H":  # windows: c0 = sky top, c1 = mullion frame (dark)
        v1 = rng.uniform(0.1, 0.35)
        s1 = rng.uniform(0.0, 0.2)
    angle = float(rng.choice([0.0, np.pi / 2, rng.uniform(0, np.pi)]))
    return Texture(
        family=family,
        pattern=pattern,
        c0=_hsv(h0, s0, v0),
        c1=_hsv(h1, s1, v1),
        period=float(rng.uniform(*spec.period)),
        angle=angle,
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def _hash(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Integer lattice hash -> float in [0, 1); wraps on purpose (uint32 arithmetic)."""
    x = (ix.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
    y = (iy.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
    h = (x * np.uint32(0x27D4EB2D)) ^ (y * np.uint32(0x165667B1)) ^ np.uint32(seed & 0xFFFFFFFF)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    h *= np.uint32(0x297A2D39)
    h ^= h >> np.uint32(15)
    return h.astype(np.float64) / 4294967296.0


def value_noise(u: np.ndarray, v: np.ndarray, seed: int) -> np.ndarray:
    """Smooth lattice value noise in [0, 1] with unit feature size."""
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    a, b = _hash(iu, iv, seed), _hash(iu + 1, iv, seed)
    c, d = _hash(iu, iv + 1, seed), _hash(iu + 1, iv + 1, seed)
    return (a * (1 - fu) + b * fu) * (1 - fv) + (c * (1 - fu) + d * fu) * fv


def fbm(u: np.ndarray, v: np.ndarray, seed: int, octaves: int = 3) -> np.ndarray:
    """Fractal sum of value noise, normalised to [0, 1]."""
    total, norm, amp, freq = np.zeros_like(u), 0.0, 1.0, 1.0
    for k in range(octaves):
        total += amp * value_noise(u * freq, v * freq, seed + 7919 * k)
        norm += amp
        amp *= 0.5
        freq *= 2.0
    return total / norm


def _square(x: np.ndarray, duty: float = 0.5, soft: float = 0.08) -> np.ndarray:
    """Soft square wave of period 1 (1 on the first `duty` of each period); the softness limits aliasing."""
    f = x - np.floor(x)
    rise = np.clip(f / soft, 0, 1)
    fall = np.clip((duty - f) / soft + 1, 0, 1)
    return np.minimum(rise, fall)


def evaluate_texture(tex: Texture, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Albedo (N, 3) in [0, 1] of texture `tex` at surface coordinates (u, v) in metres."""
    c0, c1 = np.asarray(tex.c0), np.asarray(tex.c1)
    ca, sa = np.cos(tex.angle), np.sin(tex.angle)
    ru, rv = (ca * u + sa * v) / tex.period, (-sa * u + ca * v) / tex.period
    shade = np.ones_like(u)
    s: np.ndarray
    if tex.pattern == "plain":
        s = np.zeros_like(u)
    elif tex.pattern == "noise":
        s = np.clip((fbm(ru, rv, tex.seed) - 0.5) * 2.2 + 0.5, 0, 1)
    elif tex.pattern == "stripes":
        s = _square(ru, 0.5, 0.12)
    elif tex.pattern == "checker":
        a, b = _square(ru, 0.5, 0.1), _square(rv, 0.5, 0.1)
        s = a * (1 - b) + b * (1 - a)
    elif tex.pattern == "dots":
        du, dv = ru - np.floor(ru) - 0.5, rv - np.floor(rv) - 0.5
        s = np.clip((0.3 - np.sqrt(du * du + dv * dv)) / 0.06, 0, 1)
    elif tex.pattern == "planks":
        row = np.floor(rv)
        offset = _hash(row, row * 0 + 3, tex.seed) * 4.0
        plank = np.floor(ru / 4.0 + offset)
        jitter = _hash(row, plank, tex.seed + 1)
        grain = value_noise(ru * 0.5, rv * 8.0, tex.seed + 2)
        s = np.clip(0.65 * jitter + 0.35 * grain, 0, 1)
        seam_v = 1 - _square(rv + 0.03, 0.06, 0.03)
        seam_u = 1 - _square(ru / 4.0 + offset + 0.01, 0.015, 0.01)
        shade = 0.6 + 0.4 * np.minimum(seam_v, seam_u)
    elif tex.pattern == "grid":
        lines = np.maximum(_square(ru + 0.04, 0.08, 0.04), _square(rv + 0.04, 0.08, 0.04))
        s = lines
        shade = 0.9 + 0.2 * (value_noise(np.floor(ru), np.floor(rv), tex.seed) - 0.5)
    elif tex.pattern == "window":
        # sky gradient (brighter towards the top; v grows upwards on walls) behind a mullion frame
        sky = np.clip(0.75 + 0.25 * np.tanh(v - 1.5), 0, 1)
        clouds = fbm(u * 1.5, v * 3.0, tex.seed)
        frame = np.maximum(_square(u / tex.period + 0.04, 0.08, 0.04), _square(v / tex.period + 0.04, 0.08, 0.04))
        base = c0[None, :] * (sky * (0.85 + 0.3 * clouds))[:, None]
        out = base * (1 - frame[:, None]) + c1[None, :] * frame[:, None]
        return np.clip(out, 0, 1)
    else:  # pragma: no cover - guarded by FamilySpec
        raise ValueError(f"unknown pattern {tex.pattern!r}")
    # low-frequency stains/lighting variation common to every pattern (weak)
    stain = 0.92 + 0.16 * value_noise(u * 0.7, v * 0.7, tex.seed + 11)
    out = (c0[None, :] * (1 - s[:, None]) + c1[None, :] * s[:, None]) * (shade * stain)[:, None]
    return np.clip(out, 0, 1)
