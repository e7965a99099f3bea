"""Sensor corruptions (datasets/corruptions.py): units kept, deterministic, graded, and named errors."""

from __future__ import annotations

import numpy as np
import pytest

from asymfusion.datasets.corruptions import (CORRUPTIONS, SEVERITIES, Corruption, apply_corruption,
                                             list_corruptions, parse_corruption, register_corruption)


def _sample(h: int = 96, w: int = 128) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    v, u = np.mgrid[0:h, 0:w]
    rgb = np.stack([(u * 2) % 256, (v * 3) % 256, ((u + v) * 5) % 256], -1).astype(np.float64)
    rgb = np.clip(rgb * 0.6 + 50 + rng.normal(0, 10, rgb.shape), 0, 255).astype(np.uint8)
    depth = (1.0 + 3.0 * v / h + 0.5 * (u > w // 2)).astype(np.float32)  # a ramp and a 0.5 m step
    depth[10:20, 10:30] = 0.0  # already missing
    return {"rgb": rgb, "depth": depth}


ALL = [Corruption(*name.split("/"), s) for name in list_corruptions() for s in SEVERITIES]


def test_every_modality_has_the_corruptions_the_benchmark_reports() -> None:
    assert set(list_corruptions("rgb")) >= {f"rgb/{n}" for n in
                                            ("low_light", "over_exposure", "motion_blur", "gaussian_noise", "jpeg",
                                             "missing")}
    assert set(list_corruptions("depth")) >= {f"depth/{n}" for n in
                                              ("gaussian_noise", "holes", "quantisation", "blur", "missing")}


@pytest.mark.parametrize("corruption", ALL, ids=lambda c: c.key)
def test_a_corruption_keeps_units_and_is_the_same_for_the_same_seed_and_sample(corruption: Corruption) -> None:
    sample = _sample()
    a = apply_corruption(sample, corruption, seed=0, index=3)
    b = apply_corruption(sample, corruption, seed=0, index=3)
    x, y = sample[corruption.modality], a[corruption.modality]
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(y, b[corruption.modality])
    other = "depth" if corruption.modality == "rgb" else "rgb"
    assert a[other] is sample[other]  # the other modality is untouched
    assert not np.array_equal(y, x), "a corruption must change its input"
    if corruption.modality == "depth":
        assert (y[x == 0] == 0).all() and (y >= 0).all()  # missing stays missing, nothing negative


def _distortion(corruption: Corruption, sample: dict[str, np.ndarray]) -> float:
    x = sample[corruption.modality].astype(np.float64)
    y = apply_corruption(sample, corruption, seed=0, index=0)[corruption.modality].astype(np.float64)
    if corruption.modality == "depth":
        return float(np.abs(y - x)[x > 0].mean())  # holes count as the full depth lost
    return float(np.abs(y - x).mean())


@pytest.mark.parametrize("name", list_corruptions())
def test_higher_severities_distort_more(name: str) -> None:
    sample = _sample(240, 320)  # blur lengths are set for 640-wide frames: half of them here
    modality, short = name.split("/")
    d = [_distortion(Corruption(modality, short, s), sample) for s in SEVERITIES]
    assert d[-1] > d[0] * 1.3, d
    assert all(later >= earlier * 0.9 for earlier, later in zip(d, d[1:])), d


def test_random_draws_differ_between_samples_and_seeds() -> None:
    sample, c = _sample(), Corruption("rgb", "gaussian_noise", 3)
    base = apply_corruption(sample, c, seed=0, index=0)["rgb"]
    assert not np.array_equal(base, apply_corruption(sample, c, seed=0, index=1)["rgb"])
    assert not np.array_equal(base, apply_corruption(sample, c, seed=1, index=0)["rgb"])


@pytest.mark.parametrize("severity", SEVERITIES)
def test_missing_covers_a_fifth_of_the_frame_per_severity(severity: int) -> None:
    out = apply_corruption(_sample(), Corruption("depth", "missing", severity), seed=0, index=0)["depth"]
    share = float((out == 0).mean())
    assert 0.2 * severity - 0.01 <= share <= min(1.0, 0.2 * severity + 0.25), share


def test_kinect_holes_follow_depth_edges_and_dark_surfaces() -> None:
    sample = _sample()
    sample["rgb"][60:80, 10:40] = 2  # a black object
    out = apply_corruption(sample, Corruption("depth", "holes", 3), seed=0, index=0)["depth"]
    w = sample["depth"].shape[1]
    assert (out[60:80, 10:40] == 0).all()
    step = out[:, w // 2 - 1:w // 2 + 2]
    flat = out[30:50, 80:100]
    assert (step == 0).mean() > 0.4 and (flat == 0).mean() < 0.2


def test_severity_scales_with_the_frame_width() -> None:
    small = Corruption("depth", "blur", 2)
    a, b = _sample(240, 320), _sample(480, 640)  # the same scene at twice the resolution
    da, db = _distortion(small, a), _distortion(small, b)
    assert abs(da - db) / da < 0.35, (da, db)  # the same blur relative to the frame, not the same pixel count


@pytest.mark.parametrize("text,count", [("depth/holes@3", 1), ("depth/holes", 5), ("rgb", 5 * 6)])
def test_corruptions_are_named_by_modality_name_and_severity(text: str, count: int) -> None:
    parsed = parse_corruption(text)
    assert len(parsed) >= count and all(c.key.startswith(text.split("@")[0]) for c in parsed)


@pytest.mark.parametrize("text,message", [("depth/fog", "unknown corruption 'depth/fog'; registered: "),
                                          ("thermal", "unknown corruption 'thermal'"),
                                          ("depth/holes@6", "severity must be one of 1..5"),
                                          ("depth/holes@x", "severity must be one of 1..5")])
def test_a_bad_corruption_name_lists_what_is_allowed(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_corruption(text)


def test_a_new_corruption_is_one_decorated_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CORRUPTIONS, "entries", dict(CORRUPTIONS.entries))

    @register_corruption("depth", "invert")
    def invert(x, severity, rng, sample):
        return np.where(x > 0, 10.0 - x, 0.0).astype(np.float32)

    assert "depth/invert" in list_corruptions("depth")
    out = apply_corruption(_sample(), parse_corruption("depth/invert@1")[0], seed=0, index=0)["depth"]
    assert out[50, 5] == pytest.approx(10.0 - _sample()["depth"][50, 5])
