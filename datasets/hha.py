"""HHA: depth encoded as horizontal disparity, height above ground and angle with gravity (Gupta et al., ECCV 2014).

Gupta, Girshick, Arbelaez and Malik, "Learning Rich Features from RGB-D Images for Object Detection and
Segmentation", ECCV 2014. Written from the paper and the authors' released MATLAB (rcnn-depth `saveHHA.m`,
`processDepthImage.m`, rgbdutils `computeNormalsSquareSupport.m`); the steps and units follow them:

1. **Point cloud** from metric depth Z and the intrinsics: X = (u - cx) Z / fx, Y = (v - cy) Z / fy (camera frame:
   x right, y down, z forward).
2. **Normals** by a least-squares plane fit in a (2r+1)x(2r+1) window: a plane n.P = d through points P = Z a, with
   a = ((u-cx)/fx, (v-cy)/fy, 1) the pixel's ray, reads m.a = 1/Z with m = n/d; m = (sum a a^T)^-1 (sum a / Z) over
   the window's valid pixels, all from box filters (closed-form 3x3 solve, no per-pixel loop). The normal m/|m| then
   points away from the camera (m.P = Z m.a = 1 > 0), as the reference orients it. r = 3 for the angle channel,
   r = 10 for gravity.
3. **Gravity** (a unit vector pointing down): start at the camera's y axis; repeatedly take the normals within
   45 degrees (5 iterations), then 15 degrees (5 iterations), of being parallel to the current estimate ("floor and
   ceiling") and of being perpendicular to it ("walls"), and take the direction most parallel to the first and most
   perpendicular to the second: the eigenvector of sum(walls n n^T) - sum(floors n n^T) with the smallest eigenvalue.
4. **Channels**, in the reference's units and order (R, G, B of the saved PNG):
   - horizontal disparity 310 / max(Z, 1 m) (31000 / depth in cm; depth under 1 m clipped as the reference does);
   - height above the lowest point in cm, h = -(P . g) - min(-(P . g)), except that where the lowest point is less
     than 90 cm below the camera, the floor is assumed 130 cm below it (the reference's rule);
   - angle between the normal and gravity in degrees, + 38 (floor 38, wall 128, ceiling 218).
   `encode_hha` rounds and saturates them to uint8 as MATLAB's `uint8` does.

Deviations, all deliberate: pixels with no valid depth (0 or not finite) are left out of every window sum and get 0
in all three channels (the reference runs on inpainted depth and does not mask); a window with fewer than 3 valid
pixels or a singular fit gives no normal there (angle channel 0, as MATLAB's uint8(NaN)); no superpixel clipping of
the windows (the reference passes a single superpixel, so none either); gravity is estimated from the r = 10 normals
of every other row and column (a quarter of them; their windows are 21 pixels wide, so neighbours share most of
their points): on the NYUDv2 frame of the tests it moves by 0.08 degrees and the height channel's error against
the published HHA goes from 0.56 to 0.57 levels, for half the frame's time.

Speed: the fits are box filters and a few passes of arithmetic over the frame; a frame without missing depth (NYUDv2's
filled depth) takes a factorised path with the same result and a third of the filters. `python -m
asymfusion.datasets.hha` times one 640x480 frame on this machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter

__all__ = ["CameraIntrinsics", "NYU_KINECT", "encode_hha", "gravity_direction", "hha", "point_cloud",
           "surface_normals"]

ANGLE_OFFSET = 128.0 - 90.0  # the reference's "slack": 90 degrees maps to 128
FLOOR_GUESS_CM = -130.0  # floor assumed this far below the camera when the lowest point is above NEAR_FLOOR_CM
NEAR_FLOOR_CM = -90.0
NORMAL_RADIUS, GRAVITY_RADIUS = 3, 10
GRAVITY_SCHEDULE = ((45.0, 5), (15.0, 5))  # (angle threshold in degrees, iterations)
GRAVITY_STRIDE = 2  # gravity from the normals of every other row and column (their windows are 21 wide)


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels; pixel (u, v) has its centre at integer coordinates."""

    fx: float
    fy: float
    cx: float
    cy: float

    def scaled(self, sx: float, sy: float) -> "CameraIntrinsics":
        """The intrinsics of the image resized by (sx, sy) (pixel centres kept at integer coordinates)."""
        return CameraIntrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5)


# The NYU Depth v2 toolbox's colour camera (camera_params.m: fx_rgb, fy_rgb, cx_rgb, cy_rgb, MATLAB's 1-based cx/cy
# made 0-based): the labeled set's depth is registered to this camera at 640x480.
NYU_KINECT = CameraIntrinsics(fx=518.8579, fy=519.4696, cx=324.5824, cy=252.7362)


def _valid_depth(depth: np.ndarray) -> np.ndarray:
    return np.isfinite(depth) & (depth > 0)


def point_cloud(depth: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
    """(H, W, 3) camera-frame points in metres from (H, W) metric depth (x right, y down, z forward)."""
    h, w = depth.shape
    u = (np.arange(w, dtype=np.float64) - camera.cx) / camera.fx
    v = (np.arange(h, dtype=np.float64) - camera.cy) / camera.fy
    z = depth.astype(np.float64)
    return np.stack([u[None, :] * z, v[:, None] * z, z], axis=-1)


def _normal_components(depth: np.ndarray, camera: CameraIntrinsics, radius: int, stride: int = 1
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(nx, ny, nz, ok) of the unit normals at every `stride`-th pixel (step 2 above; arrays, not stacked, to keep
    the arithmetic to a few passes over the frame).

    The fit is done in pixel offsets from the principal point, (u - cx, v - cy, 1), over the window's valid pixels
    (weighted means from box filters), which keeps it well conditioned at any focal length; the ray form's solution
    is m = (fx m~x, fy m~y, m~z)."""
    h, w = depth.shape
    valid = _valid_depth(depth)
    if valid.all():
        return _dense_normal_components(depth, camera, radius, stride)
    one = valid.astype(np.float64)
    pu = (np.arange(w, dtype=np.float64) - camera.cx)[None, :] * one
    pv = (np.arange(h, dtype=np.float64) - camera.cy)[:, None] * one
    inv_z = np.divide(1.0, depth, out=np.zeros(depth.shape), where=valid)
    size = 2 * radius + 1
    pick = (slice(None, None, stride), slice(None, None, stride))

    def box(f: np.ndarray) -> np.ndarray:  # window sums at the picked pixels
        return uniform_filter(f, size=size, mode="constant", cval=0.0)[pick]

    count = box(one)
    safe = 1.0 / np.maximum(count, 1e-12)
    e_u, e_v, e_z = box(pu) * safe, box(pv) * safe, box(inv_z) * safe
    c_uu = box(pu * pu) * safe - e_u * e_u
    c_uv = box(pu * pv) * safe - e_u * e_v
    c_vv = box(pv * pv) * safe - e_v * e_v
    c_uz = box(pu * inv_z) * safe - e_u * e_z
    c_vz = box(pv * inv_z) * safe - e_v * e_z
    # 1/Z = m~u (u - e_u) + m~v (v - e_v) + (m~z + m~u e_u + m~v e_v): the slopes from the 2x2 covariance system
    det = c_uu * c_vv - c_uv * c_uv
    ok = valid[pick] & (count * size * size > 2.5) & (det > 1e-3)
    inv_det = np.divide(1.0, det, out=np.zeros_like(det), where=ok)
    mu = (c_vv * c_uz - c_uv * c_vz) * inv_det
    mv = (c_uu * c_vz - c_uv * c_uz) * inv_det
    mz = e_z - mu * e_u - mv * e_v
    mx, my = mu * camera.fx, mv * camera.fy
    norm = np.sqrt(mx * mx + my * my + mz * mz)
    ok &= norm > 0
    scale = np.divide(1.0, norm, out=np.full_like(norm, np.nan), where=ok)
    return mx * scale, my * scale, mz * scale, ok


def _dense_normal_components(depth: np.ndarray, camera: CameraIntrinsics, radius: int, stride: int
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`_normal_components` of a frame without missing depth, in fewer passes and with the same result: every
    window's valid pixels are then the frame's pixels inside it, a rectangle, so the sums that depend only on the
    pixel coordinates factor into products of 1-D window sums along the rows and the columns; the (u, v)
    covariance vanishes and the 2x2 system is diagonal. Only the three sums that involve 1/Z need 2-D box filters."""
    h, w = depth.shape
    size = 2 * radius + 1
    kernel = np.ones(size)
    pick = (slice(None, None, stride), slice(None, None, stride))

    def line_moments(n: int, centre: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = np.arange(n, dtype=np.float64) - centre  # window count, mean and variance along one axis
        count = np.convolve(np.ones(n), kernel, mode="same")
        mean = np.convolve(a, kernel, mode="same") / count
        return count, mean, np.convolve(a * a, kernel, mode="same") / count - mean * mean

    n_u, e_u, c_uu = (x[::stride][None, :] for x in line_moments(w, camera.cx))
    n_v, e_v, c_vv = (x[::stride][:, None] for x in line_moments(h, camera.cy))
    pu = (np.arange(w, dtype=np.float64) - camera.cx)[None, :]
    pv = (np.arange(h, dtype=np.float64) - camera.cy)[:, None]
    inv_z = 1.0 / depth
    inv_count = 1.0 / (n_u * n_v)

    def mean(f: np.ndarray) -> np.ndarray:
        return uniform_filter(f, size=size, mode="constant", cval=0.0)[pick] * (size * size) * inv_count

    e_z = mean(inv_z)
    mu = (mean(pu * inv_z) - e_u * e_z) / c_uu
    mv = (mean(pv * inv_z) - e_v * e_z) / c_vv
    mz = e_z - mu * e_u - mv * e_v
    mx, my = mu * camera.fx, mv * camera.fy
    norm = np.sqrt(mx * mx + my * my + mz * mz)
    ok = (norm > 0) & (c_uu * c_vv > 1e-3)
    scale = np.divide(1.0, norm, out=np.full_like(norm, np.nan), where=ok)
    return mx * scale, my * scale, mz * scale, ok


def surface_normals(depth: np.ndarray, camera: CameraIntrinsics, radius: int = NORMAL_RADIUS, stride: int = 1
                    ) -> np.ndarray:
    """(H, W, 3) unit normals pointing away from the camera, NaN where no plane could be fitted (step 2 above);
    with `stride`, those of every stride-th row and column only."""
    return np.stack(_normal_components(depth, camera, radius, stride)[:3], axis=-1)


def gravity_direction(normals: np.ndarray, schedule: tuple[tuple[float, int], ...] = GRAVITY_SCHEDULE) -> np.ndarray:
    """A unit vector pointing down, in the camera frame, from (H, W, 3) normals (step 3 above)."""
    flat = normals.reshape(-1, 3)
    return _gravity(*(np.ascontiguousarray(flat[:, k]) for k in range(3)), schedule)


def _gravity(nx: np.ndarray, ny: np.ndarray, nz: np.ndarray,
             schedule: tuple[tuple[float, int], ...] = GRAVITY_SCHEDULE) -> np.ndarray:
    """`gravity_direction` from the normals' components (NaN where none), one array each."""
    keep = np.isfinite(nx)
    nx, ny, nz = nx[keep], ny[keep], nz[keep]
    g = np.array([0.0, 1.0, 0.0])
    if len(nx) == 0:
        return g
    # the 6 distinct entries of n n^T, once (rows of one array): each iteration is then one weighted sum
    outer = np.stack([nx * nx, nx * ny, nx * nz, ny * ny, ny * nz, nz * nz])
    i, j = (0, 0, 0, 1, 1, 2), (0, 1, 2, 1, 2, 2)
    for threshold, iterations in schedule:
        cos_t, sin_t = np.cos(np.radians(threshold)), np.sin(np.radians(threshold))
        for _ in range(iterations):
            sim = np.abs(nx * g[0] + ny * g[1] + nz * g[2])
            weight = (sim < sin_t).astype(np.float64) - (sim > cos_t)  # walls +1, floors and ceilings -1
            entries = outer @ weight
            a = np.empty((3, 3))
            a[i, j] = entries
            a[j, i] = entries
            values, vectors = np.linalg.eigh(a)
            new = vectors[:, np.argmin(values)]
            g = new * (1.0 if new @ g >= 0 else -1.0)
    return g / np.linalg.norm(g)


def hha(depth: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
    """(H, W, 3) float32 HHA channels in the reference's units: disparity 310 / max(Z, 1 m), height above the floor
    in cm, angle with gravity + 38 degrees; 0 where the depth is missing (and angle 0 where no normal was fitted)."""
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W) metres, got shape {depth.shape}")
    valid = _valid_depth(depth)
    out = np.zeros(depth.shape + (3,), dtype=np.float32)
    if not valid.any():
        return out
    gravity = _gravity(*_normal_components(depth, camera, GRAVITY_RADIUS, GRAVITY_STRIDE)[:3])
    nx, ny, nz, has_normal = _normal_components(depth, camera, NORMAL_RADIUS)
    z_cm = np.where(valid, depth, 0.0) * 100.0
    h, w = depth.shape
    ray_dot_g = (((np.arange(w) - camera.cx) / camera.fx)[None, :] * gravity[0]
                 + ((np.arange(h) - camera.cy) / camera.fy)[:, None] * gravity[1] + gravity[2])
    up = -z_cm * ray_dot_g  # -(P . g), P = Z (ray)
    lowest = up[valid].min()
    floor = FLOOR_GUESS_CM if lowest > NEAR_FLOOR_CM else lowest
    cos_angle = np.clip(nx * gravity[0] + ny * gravity[1] + nz * gravity[2], -1.0, 1.0)
    angle = np.degrees(np.arccos(cos_angle, where=has_normal, out=np.zeros_like(cos_angle))) + ANGLE_OFFSET
    out[..., 0] = np.where(valid, 31000.0 / np.maximum(z_cm, 100.0), 0.0)
    out[..., 1] = np.where(valid, up - floor, 0.0)
    out[..., 2] = np.where(valid & has_normal, angle, 0.0)
    return out


def encode_hha(channels: np.ndarray) -> np.ndarray:
    """float HHA channels -> uint8 as MATLAB's uint8: rounded to nearest, saturated to [0, 255], NaN -> 0."""
    return np.clip(np.rint(np.nan_to_num(channels, nan=0.0)), 0, 255).astype(np.uint8)


def _time_one_frame(repeats: int = 5) -> float:
    """Seconds per 640x480 frame (best of `repeats`) on a room-like synthetic depth map."""
    v, u = np.mgrid[0:480, 0:640].astype(np.float64)
    depth = 2.0 + 1.5 * (v / 480.0) + 0.2 * np.sin(u / 40.0)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        hha(depth, NYU_KINECT)
        best = min(best, time.perf_counter() - t0)
    return best


if __name__ == "__main__":  # python -m asymfusion.datasets.hha: the speed on this machine
    import os

    print(f"HHA of one 640x480 frame: {_time_one_frame():.3f} s (best of 5; OMP/BLAS threads: "
          f"{os.environ.get('OMP_NUM_THREADS', 'default')})")
