"""HHA (datasets/hha.py) against its definition on scenes of known geometry, and against a published HHA frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import minimum_filter

from asymfusion.datasets.hha import (NYU_KINECT, CameraIntrinsics, encode_hha, gravity_direction, hha,
                                     surface_normals)

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "real-samples" / "nyuv2" / "sagate_NYUDepthv2"


def _rays(shape: tuple[int, int], camera: CameraIntrinsics) -> np.ndarray:
    h, w = shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u)], axis=-1)


def _scene(shape, camera, planes, panel=None):
    """Depth (ray parameter = z) of the nearest of `planes` [(unit normal n, offset d): n.P = d > 0] per pixel, and
    which plane each pixel sees (-1: none); `panel` (rows, cols slices) shows the last plane only there, in front."""
    rays = _rays(shape, camera)
    best, which = np.full(shape, np.inf), np.full(shape, -1)
    for i, (n, d) in enumerate(planes):
        denom = rays @ np.asarray(n, dtype=np.float64)
        t = np.where(denom > 1e-9, d / np.where(denom > 1e-9, denom, 1.0), np.inf)
        closer = t < best
        if panel is not None and i == len(planes) - 1:
            closer = np.zeros(shape, dtype=bool)
            closer[panel] = np.isfinite(t[panel])
        best[closer], which[closer] = t[closer], i
    return np.where(np.isfinite(best), best, 0.0), which


def _interior(which: np.ndarray, label: int, radius: int = 11) -> np.ndarray:
    """Pixels of plane `label` whose whole (2r+1)^2 window sees only that plane (no mixed fits)."""
    return minimum_filter((which == label).astype(np.uint8), size=2 * radius + 1, mode="constant") == 1


PITCH = np.radians(20.0)  # the camera looks 20 degrees down
HEIGHT = 1.5  # metres above the floor
GRAVITY = np.array([0.0, np.cos(PITCH), np.sin(PITCH)])  # world "down" in the camera frame
WALL_NORMAL = np.array([0.0, -np.sin(PITCH), np.cos(PITCH)])  # world forward (horizontal) in the camera frame


def _room(camera: CameraIntrinsics, shape=(240, 320), wall_at: float = 4.0, slope: float | None = None):
    planes = [(GRAVITY, HEIGHT), (WALL_NORMAL, wall_at)]
    if slope is not None:  # a ramp rising ahead: its normal (away from the camera) is `slope` degrees from gravity
        n = np.cos(np.radians(slope)) * GRAVITY + np.sin(np.radians(slope)) * WALL_NORMAL
        planes.append((n, 2.0))
        return _scene(shape, camera, planes, panel=(slice(60, 130), slice(110, 210)))
    return _scene(shape, camera, planes)


CAMERA = CameraIntrinsics(fx=260.0, fy=260.0, cx=159.5, cy=119.5)


def test_a_floor_and_a_wall_come_out_as_computed_by_hand() -> None:
    depth, which = _room(CAMERA)
    out = hha(depth, CAMERA)
    floor, wall = _interior(which, 0), _interior(which, 1)
    assert floor.sum() > 2000 and wall.sum() > 2000
    points = depth[..., None] * _rays(depth.shape, CAMERA)
    # disparity: 31000 / depth in cm, depth clipped at 1 m
    np.testing.assert_allclose(out[..., 0][depth > 0], 310.0 / np.maximum(depth[depth > 0], 1.0), rtol=1e-5)
    # height above the floor in cm: 0 on the floor, (HEIGHT - P.g) on the wall; the estimated gravity is within
    # about 0.15 degrees of the true one (the fits at the floor-wall crease pull it), up to ~1 cm at 4 m
    np.testing.assert_allclose(out[..., 1][floor], 0.0, atol=1.0)
    np.testing.assert_allclose(out[..., 1][wall], 100 * (HEIGHT - points[wall] @ GRAVITY), atol=0.5)
    # angle with gravity + 38: the floor's normal (away from the camera) is gravity itself, a wall is at 90 degrees
    np.testing.assert_allclose(out[..., 2][floor], 38.0, atol=0.5)
    np.testing.assert_allclose(out[..., 2][wall], 128.0, atol=0.5)


def test_gravity_is_recovered_from_the_normals_of_a_pitched_camera() -> None:
    depth, _ = _room(CAMERA)
    g = gravity_direction(surface_normals(depth, CAMERA, radius=10))
    assert np.degrees(np.arccos(np.clip(g @ GRAVITY, -1, 1))) < 0.5


def test_a_ramp_at_a_known_slope_gets_that_angle() -> None:
    depth, which = _room(CAMERA, slope=60.0)
    ramp = _interior(which, 2, radius=4)
    assert ramp.sum() > 200
    np.testing.assert_allclose(hha(depth, CAMERA)[..., 2][ramp], 60.0 + 38.0, atol=1.0)


def test_the_fit_stays_exact_at_a_long_focal_length() -> None:
    """Cityscapes' fx is 2262 px: the rays of a window differ by 1/2262, which must not make the fit singular."""
    camera = CameraIntrinsics(fx=2262.5, fy=2265.3, cx=159.5, cy=119.5)
    depth, which = _room(camera, wall_at=40.0)
    normals = surface_normals(depth, camera)
    floor = _interior(which, 0)
    assert floor.sum() > 1000
    np.testing.assert_allclose(normals[floor] @ GRAVITY, 1.0, atol=1e-4)


def test_missing_depth_is_left_out_and_encoded_as_zero() -> None:
    depth, which = _room(CAMERA)
    holes = np.zeros_like(depth, dtype=bool)
    holes[::7, ::5] = True
    holes[100:130, 40:80] = True
    out = hha(np.where(holes, 0.0, depth), CAMERA)
    assert (out[holes] == 0).all()
    floor = _interior(which, 0) & ~minimum_filter(~holes, size=3) & ~holes
    np.testing.assert_allclose(out[..., 2][floor], 38.0, atol=0.5)  # holes in a window do not bias the normal


def test_a_camera_with_no_floor_in_view_assumes_it_130_cm_below() -> None:
    # a level camera facing a corner (walls 3 m ahead and 1 m to the right, seen right of column 127); its lowest
    # point is 35 cm below it,
    # above -90 cm, so the floor is set 130 cm below the camera
    camera = CameraIntrinsics(fx=260.0, fy=260.0, cx=39.5, cy=29.5)
    depth, which = _scene((60, 160), camera, [(np.array([0.0, 0.0, 1.0]), 3.0), (np.array([1.0, 0.0, 0.0]), 1.0)])
    out = hha(depth, camera)
    front = _interior(which, 0, radius=3)
    rows = np.nonzero(front)[0]
    below = (rows - camera.cy) / camera.fy * depth[front]  # metres below the optical axis
    np.testing.assert_allclose(out[..., 1][front], 130.0 - 100 * below, atol=0.5)
    np.testing.assert_allclose(out[..., 2][front], 128.0, atol=0.5)


def test_uint8_encoding_rounds_and_saturates_like_matlab() -> None:
    channels = np.array([[[310.0, -4.0, np.nan], [254.5, 12.4, 128.6]]], dtype=np.float32)
    assert encode_hha(channels).tolist() == [[[255, 0, 0], [254, 12, 129]]]


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/real-samples is not present")
def test_a_real_nyudv2_frame_matches_its_published_hha() -> None:
    """NYUDv2 labeled frame #1: its filled depth (metres) and the HHA that SA-Gate / CMX distribute for it."""
    depth = np.load(REAL / "Depth" / "0.npy")
    published = np.asarray(Image.open(REAL / "HHA" / "0.jpg").convert("RGB")).astype(np.float64)
    ours = encode_hha(hha(depth, NYU_KINECT)).astype(np.float64)
    error = np.abs(ours - published).mean(axis=(0, 1))
    # JPEG-compressed reference, computed by another implementation of the same algorithm
    assert error[0] < 3.0, error  # disparity: 310 / depth
    assert error[1] < 6.0, error  # height above the floor, cm
    assert error[2] < 8.0, error  # angle with gravity


def test_the_hha_layout_of_rendered_scenes_puts_the_floor_at_zero_height_and_walls_upright(tmp_path: Path) -> None:
    """The renderer's own camera (its field of view varies per view) through `write_hha_layout`: on the floor the
    height channel is ~0 cm and the angle 38 (normal along gravity), on walls the angle is 128 (upright)."""
    from asymfusion.datasets.prepare.hha import HHA_INFO, write_hha_layout
    from asymfusion.datasets.synthetic import render_dataset

    render_dataset(tmp_path / "synthetic", size=96, n_train=3, n_val=1, seed=3, progress=False)
    layout = tmp_path / "synthetic" / "segmentation"
    summary = write_hha_layout(layout, tmp_path / "hha", camera="synthetic", depth_scale=5000.0, progress_bar=False)
    assert summary["frames"] == 4 and (tmp_path / "hha" / HHA_INFO).is_file()
    floors, walls = [], []
    for frame in range(4):
        out = np.asarray(Image.open(tmp_path / "hha" / f"{frame:06d}.png"))
        labels = np.asarray(Image.open(layout / "masks" / f"{frame:06d}.png"))
        assert out.shape == (96, 96, 3) and out.dtype == np.uint8
        floor, wall = _interior_mask(labels == 0), _interior_mask(labels == 2)
        floors.append(out[floor].astype(float))
        walls.append(out[wall].astype(float))
    floor_px, wall_px = np.concatenate(floors), np.concatenate(walls)
    assert len(floor_px) > 500 and len(wall_px) > 500
    assert np.median(floor_px[:, 1]) <= 3 and abs(np.median(floor_px[:, 2]) - 38) <= 3
    assert abs(np.median(wall_px[:, 2]) - 128) <= 3


def _interior_mask(mask: np.ndarray, radius: int = 4) -> np.ndarray:
    return minimum_filter(mask.astype(np.uint8), size=2 * radius + 1, mode="constant") == 1


def test_the_fast_path_for_frames_without_holes_gives_the_general_fit() -> None:
    """A frame with every depth valid takes the factorised path; one missing pixel in a corner sends the same frame
    through the general masked fit, which must agree away from that corner."""
    depth, _ = _room(CAMERA, slope=60.0)
    depth = np.where(depth > 0, depth, 3.0)
    holed = depth.copy()
    holed[0, 0] = 0.0
    for radius in (3, 10):
        dense, general = surface_normals(depth, CAMERA, radius), surface_normals(holed, CAMERA, radius)
        far = np.ones(depth.shape, dtype=bool)
        far[: 2 * radius + 1, : 2 * radius + 1] = False
        assert np.isfinite(dense[far]).all()
        np.testing.assert_allclose(dense[far], general[far], atol=1e-6)
