"""Render views of procedural scenes and write them in both on-disk layouts (docs/design.md §7).

Geometry (depth, normals, labels, occlusion edges) is sampled with one ray through each pixel centre, so depth,
normals and labels describe the same surface point and back-projection is exact. Appearance (rgb, reshading,
texture edges) is the average of `SUPERSAMPLE`² sub-pixel rays, which removes aliasing of textures and silhouettes.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from asymfusion.datasets import formats
from asymfusion.datasets.synthetic import raycast
from asymfusion.datasets.synthetic.scene import (
    CLASS_FAMILY, SYNTHETIC_CLASSES, SYNTHETIC_PALETTE, Scene, sample_camera, sample_scene, view_rng,
)
from asymfusion.datasets.synthetic.textures import evaluate_texture
from asymfusion.datasets.files import atomic_write

RENDERER_VERSION = "1.0"
SUPERSAMPLE = 2
# uint16 scale of the Taskonomy edge PNGs (PNG value = float edge value x scale): at size 64 the 95th percentile of
# per-image maxima is ~1.1e4, the order of the real data's (CEN divides by fixed maxima 11355 / 11584)
EDGE_TEXTURE_SCALE = 4000.0
EDGE_OCCLUSION_SCALE = 17000.0
TRANSLATION_OUT_DOMAINS = ("rgb", "normal", "reshading", "depth_zbuffer", "depth_euclidean", "edge_texture",
                           "edge_occlusion")


def intrinsics(size: int, fov: float) -> np.ndarray:
    """(fx, fy, cx, cy) of a square image with horizontal field of view `fov`; pixel (u, v) has its centre at
    integer coordinates, so a pixel's ray is ((u - cx) / fx, (v - cy) / fy, 1)."""
    f = (size / 2.0) / np.tan(fov / 2.0)
    c = (size - 1) / 2.0
    return np.array([f, f, c, c], dtype=np.float64)


def _camera_rays(size: int, k: np.ndarray, offsets: list[tuple[float, float]]) -> np.ndarray:
    """Camera-frame ray directions with unit z, (len(offsets) * size * size, 3), offset-major."""
    vv, uu = np.mgrid[0:size, 0:size].astype(np.float64)
    rays = []
    for du, dv in offsets:
        x = (uu.ravel() + du - k[2]) / k[0]
        y = (vv.ravel() + dv - k[3]) / k[1]
        rays.append(np.stack([x, y, np.ones_like(x)], axis=1))
    return np.concatenate(rays)


def _materials(scene: Scene, hits: raycast.Hits, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                          np.ndarray]:
    """Labels, albedo (N,3) and the window mask of each hit, decals applied on top of their face."""
    labels = np.zeros(len(u), dtype=np.uint8)
    albedo = np.zeros((len(u), 3))
    window = np.zeros(len(u), dtype=bool)
    for pid in np.unique(hits.prim):
        m = hits.prim == pid
        if pid < raycast.N_FACES:
            name = "floor" if pid == 0 else "ceiling" if pid == 1 else "wall"
            labels[m] = SYNTHETIC_CLASSES.index(name)
            albedo[m] = evaluate_texture(scene.face_textures[pid], u[m], v[m])
        else:
            obj = scene.objects[pid - raycast.N_FACES]
            labels[m] = obj.label
            albedo[m] = evaluate_texture(obj.texture, u[m], v[m])
    for decal in scene.decals:
        u0, u1, v0, v1 = decal.rect
        m = (hits.prim == decal.face) & (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)
        if m.any():
            labels[m] = decal.label
            albedo[m] = evaluate_texture(decal.texture, u[m] - u0, v[m] - v0)
            window[m] = SYNTHETIC_CLASSES[decal.label] == "window"
    return labels, albedo, window


def _occlusion_jumps(depth: np.ndarray, normal: np.ndarray, prim: np.ndarray, rays: np.ndarray) -> np.ndarray:
    """Per-pixel strength of depth discontinuities between 4-neighbours on different primitives.

    For a neighbour pair (p, q) the error is how far q's depth is from p's tangent plane along q's ray (relative),
    and vice versa; the smaller of the two is kept, so creases (box on the floor, wall corners) score ~0 while
    occluding silhouettes score their relative depth gap. Smooth surfaces score exactly 0 at any slant."""
    pts = rays * depth[..., None]
    jump = np.zeros(depth.shape)

    def pair_err(pa, na, ra_q, zq):
        num = np.einsum("...i,...i->...", na, pa)
        den = np.einsum("...i,...i->...", na, ra_q)
        with np.errstate(divide="ignore", invalid="ignore"):
            zpred = num / den
        ok = (den < -1e-6) & (zpred > 0)
        return np.where(ok, np.abs(zq - zpred) / zq, 1.0)

    for axis in (0, 1):
        a = [slice(None), slice(None)]
        b = [slice(None), slice(None)]
        a[axis], b[axis] = slice(0, -1), slice(1, None)
        sa, sb = tuple(a), tuple(b)
        e = np.minimum(pair_err(pts[sa], normal[sa], rays[sb], depth[sb]),
                       pair_err(pts[sb], normal[sb], rays[sa], depth[sa]))
        e = np.where(prim[sa] != prim[sb], np.clip(e, 0.0, 1.0), 0.0)
        jump[sa] = np.maximum(jump[sa], e)
        jump[sb] = np.maximum(jump[sb], e)
    return jump


def render_view(seed: int, index: int, size: int, *, views_per_scene: int = 2) -> dict[str, np.ndarray]:
    """Render global view `index` (scene index // views_per_scene, view index % views_per_scene).

    Returns float32 rgb (H,W,3) in [0,1], depth / depth_euclidean (H,W) metres, normal (H,W,3) unit vectors in
    the camera frame (x right, y down, z forward; normals point towards the camera, so n_z <= 0), reshading (H,W)
    in [0,1], edge_texture and edge_occlusion (H,W) >= 0, labels (H,W) uint8, albedo (H,W,3), and intrinsics
    float64 (fx, fy, cx, cy) plus the scalar arrays fx, fy, cx, cy."""
    scene_index, view = divmod(index, views_per_scene)
    scene = sample_scene(seed, scene_index)
    cam = sample_camera(scene, seed, scene_index, view)
    rng = view_rng(seed, scene_index, view + 1_000_000)
    k = intrinsics(size, cam.fov)
    s = SUPERSAMPLE
    sub = [((i + 0.5) / s - 0.5, (j + 0.5) / s - 0.5) for j in range(s) for i in range(s)]
    cam_rays = _camera_rays(size, k, [(0.0, 0.0)] + sub)
    world_rays = cam_rays @ cam.rotation.T
    origin = np.asarray(cam.position)
    hits = raycast.trace(scene, origin, world_rays)
    n_world, u, v = raycast.shade_geometry(scene, hits, world_rays)
    labels, albedo, window = _materials(scene, hits, u, v)
    npx = size * size
    # geometry from the centre rays
    c = slice(0, npx)
    depth = hits.t[c].reshape(size, size)
    ray0 = cam_rays[c].reshape(size, size, 3)
    depth_euc = depth * np.linalg.norm(ray0, axis=-1)
    normal = (n_world[c] @ cam.rotation).reshape(size, size, 3)
    prim = hits.prim[c].reshape(size, size)
    jump = _occlusion_jumps(depth, normal, prim, ray0)
    edge_occ = ndimage.gaussian_filter(jump, sigma=max(0.7, size / 128))
    # appearance from the sub-pixel rays
    a = slice(npx, None)
    grey, tinted = raycast.lambert(scene, hits.point[a], n_world[a])
    radiance = albedo[a] * tinted + scene.window_glow * albedo[a] * window[a, None]
    radiance = radiance.reshape(s * s, size, size, 3).mean(axis=0)
    alb = albedo[a].reshape(s * s, size, size, 3).mean(axis=0)
    reshading = np.clip(grey.reshape(s * s, size, size).mean(axis=0), 0, 1)
    # auto exposure (a camera would meter the scene) + sensor noise
    lum = radiance @ np.array([0.299, 0.587, 0.114])
    exposure = np.clip(0.85 / max(np.percentile(lum, 97), 1e-3), 0.6, 2.5) * rng.uniform(0.85, 1.1)
    rgb = radiance * exposure
    sigma = rng.uniform(0.004, 0.02)
    rgb = rgb + rng.normal(0.0, 1.0, rgb.shape) * (sigma + 0.012 * np.sqrt(np.clip(rgb, 0, 1)))
    rgb = np.clip(rgb, 0.0, 1.0)
    alb_lum = alb @ np.array([0.299, 0.587, 0.114])
    edge_tex = np.hypot(ndimage.sobel(alb_lum, axis=0), ndimage.sobel(alb_lum, axis=1))
    out: dict[str, np.ndarray] = {
        "rgb": rgb.astype(np.float32),
        "depth": depth.astype(np.float32),
        "depth_euclidean": depth_euc.astype(np.float32),
        "normal": normal.astype(np.float32),
        "reshading": reshading.astype(np.float32),
        "edge_texture": edge_tex.astype(np.float32),
        "edge_occlusion": edge_occ.astype(np.float32),
        "labels": labels[c].reshape(size, size),
        "albedo": alb.astype(np.float32),
        "intrinsics": k,
    }
    for name, value in zip(("fx", "fy", "cx", "cy"), k):
        out[name] = np.asarray(value)
    return out


# ---------------------------------------------------------------- encodings (on-disk, see docs/synthetic-data.md)

def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def _taskonomy_depth(depth: np.ndarray) -> np.ndarray:
    enc = formats.encode_depth(depth, formats.TASKONOMY_DEPTH_SCALE)
    enc = np.minimum(enc, formats.TASKONOMY_DEPTH_INVALID - 1)
    enc[enc == 0] = formats.TASKONOMY_DEPTH_INVALID
    return enc


def _u16(x: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.round(x * scale), 0, 65535).astype(np.uint16)


def encode_translation(view: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Taskonomy encodings of a rendered view, keyed by domain."""
    return {
        "rgb": _u8(view["rgb"]),
        "normal": _u8(view["normal"] * 0.5 + 0.5),
        "reshading": np.repeat(_u8(view["reshading"])[..., None], 3, axis=2),
        "depth_zbuffer": _taskonomy_depth(view["depth"]),
        "depth_euclidean": _taskonomy_depth(view["depth_euclidean"]),
        "edge_texture": _u16(view["edge_texture"], EDGE_TEXTURE_SCALE),
        "edge_occlusion": _u16(view["edge_occlusion"], EDGE_OCCLUSION_SCALE),
    }


def _plan(n_train: int, n_val: int, views_per_scene: int) -> dict[str, list[tuple[int, int, int]]]:
    """(frame, scene, view) per split; val scenes come after every train scene, so the splits share no scene."""
    n_train_scenes = -(-n_train // views_per_scene)
    plan: dict[str, list[tuple[int, int, int]]] = {"train": [], "val": []}
    for i in range(n_train):
        plan["train"].append((i, i // views_per_scene, i % views_per_scene))
    for j in range(n_val):
        plan["val"].append((n_train + j, n_train_scenes + j // views_per_scene, j % views_per_scene))
    return plan


def _render_and_write(job: tuple[Path, int, int, int, int, int, int]) -> int:
    """Render one view and write its files in both layouts (runs in worker processes)."""
    out, seed, size, vps, frame, scene, view = job
    data = render_view(seed, scene * vps + view, size, views_per_scene=vps)
    seg = out / "segmentation"
    rgb_path, mask_path, depth_path = formats.seg_frame_paths(frame)
    rgb8 = _u8(data["rgb"])
    formats.write_png(seg / rgb_path, rgb8)
    formats.write_png(seg / mask_path, data["labels"])
    formats.write_png(seg / depth_path, formats.encode_depth(data["depth"]))
    enc = encode_translation(data)
    for domain, array in enc.items():
        formats.write_png(out / "translation" / formats.taskonomy_name(scene, view, domain), array)
    return frame


def render_dataset(
    out: Path,
    *,
    size: int = 64,
    n_train: int = 600,
    n_val: int = 200,
    views_per_scene: int = 2,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Render n_train + n_val views into `out/segmentation`, `out/translation` and `out/meta.json`.

    Output is byte-identical for the same arguments whatever `workers` is (each view has its own seed)."""
    out = Path(out)
    if views_per_scene < 1 or n_train < 0 or n_val < 0 or size < 8:
        raise ValueError("need views_per_scene >= 1, n_train >= 0, n_val >= 0 and size >= 8")
    start = time.perf_counter()
    plan = _plan(n_train, n_val, views_per_scene)
    jobs = [(out, seed, size, views_per_scene, f, s, v) for split in ("train", "val") for f, s, v in plan[split]]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="render synthetic", unit="view")
    if workers > 1 and len(jobs) > 1:
        with mp.get_context("spawn").Pool(workers) as pool:
            for _ in pool.imap_unordered(_render_and_write, jobs, chunksize=8):
                if bar is not None:
                    bar.update(1)
    else:
        for job in jobs:
            _render_and_write(job)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    for split, rows in plan.items():
        formats.write_list(out / "segmentation" / f"{split}.txt", [formats.seg_frame_paths(f) for f, _, _ in rows])
        formats.write_list(out / "translation" / f"{split}.txt",
                           [formats.taskonomy_template(s, v) for _, s, v in rows])
    counts = {
        "train_views": n_train,
        "val_views": n_val,
        "train_scenes": len({s for _, s, _ in plan["train"]}),
        "val_scenes": len({s for _, s, _ in plan["val"]}),
    }
    meta = {
        "renderer": "asymfusion.datasets.synthetic",
        "renderer_version": RENDERER_VERSION,
        "classes": list(SYNTHETIC_CLASSES),
        "palette": SYNTHETIC_PALETTE.tolist(),
        "class_texture_family": CLASS_FAMILY,
        "ignore_index": formats.IGNORE_INDEX,
        "arguments": {"size": size, "n_train": n_train, "n_val": n_val, "views_per_scene": views_per_scene,
                      "seed": seed},
        "counts": counts,
        "encodings": {
            "segmentation": {"rgb": "RGB8", "masks": "uint8 class id (255 never written)",
                             "depth": f"uint16 metres x {formats.DEPTH_SCALE:g}"},
            "translation": {
                "rgb": "RGB8",
                "normal": "RGB8 round((n * 0.5 + 0.5) * 255), camera frame x right, y down, z forward",
                "reshading": "RGB8, three identical channels, round(shading * 255)",
                "depth_zbuffer": f"uint16 metres x {formats.TASKONOMY_DEPTH_SCALE:g}, "
                                 f"{formats.TASKONOMY_DEPTH_INVALID} invalid",
                "depth_euclidean": f"uint16 metres x {formats.TASKONOMY_DEPTH_SCALE:g}, "
                                   f"{formats.TASKONOMY_DEPTH_INVALID} invalid",
                "edge_texture": f"uint16 sobel magnitude of albedo luminance x {EDGE_TEXTURE_SCALE:g}",
                "edge_occlusion": f"uint16 blurred relative depth-discontinuity x {EDGE_OCCLUSION_SCALE:g}",
            },
        },
    }
    path = out / "meta.json"
    atomic_write(path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return {"out": str(out), "seconds": time.perf_counter() - start, "size": size, **counts}
