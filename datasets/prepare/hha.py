"""`asymfusion prepare hha`: the HHA encoding of a segmentation layout's depth, written once (datasets/hha.py).

Reads `<layout>/{train,val}.txt` and each frame's depth PNG, and writes `<out>/NNNNNN.png` (uint8 RGB = horizontal
disparity, height above the floor, angle with gravity; the reference's units) for every frame, plus
`<out>/hha.json` (camera source, each frame's intrinsics, seconds). The loader reads it when `data.depth_encoding: hha`. It goes
to its own folder (the pipeline uses `<data>/hha/<dataset root>`) so that adding it never changes the prepared
layout, nor the runs trained on raw depth.

The camera of each frame, by `camera`:
* `nyudv2`: the Kinect colour camera of the NYU toolbox (datasets/hha.py `NYU_KINECT`), rescaled if a frame is not
  640x480;
* `cityscapes`: the frame's own `camera/<split>/<city>/<name>_camera.json` (fx, fy, u0, v0) under `raw`, found
  through the layout's `frames.tsv`;
* `synthetic`: the procedural renderer's camera of that view, recomputed from `<layout>/../meta.json` (seed, size,
  views per scene): the field of view varies per view.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

import numpy as np

from asymfusion.datasets.files import atomic_write
from asymfusion.datasets.depth_encoding import HHA_INFO
from asymfusion.datasets.formats import DataFormatError, read_list, read_png, write_png
from asymfusion.datasets.hha import NYU_KINECT, CameraIntrinsics, encode_hha, hha
from asymfusion.datasets.prepare.common import progress

__all__ = ["CAMERAS", "HHA_INFO", "camera_source", "hha_frame_path", "write_hha_layout"]

CAMERAS = ("nyudv2", "cityscapes", "synthetic")
SPLITS = ("train", "val")
CameraOf = Callable[[int, tuple[int, int]], CameraIntrinsics]  # (frame number, (H, W)) -> intrinsics


def hha_frame_path(hha_root: str | Path, depth_rel: str) -> Path:
    """Where the HHA image of the frame whose depth is `depth_rel` (e.g. `depth/000123.png`) lives."""
    return Path(hha_root) / Path(depth_rel).name


def _frame_number(depth_rel: str) -> int:
    stem = Path(depth_rel).stem
    if not stem.isdigit():
        raise DataFormatError(f"depth path {depth_rel!r} is not NNNNNN.png (a layout written by `prepare`)")
    return int(stem)


def _nyu_camera(frame: int, shape: tuple[int, int]) -> CameraIntrinsics:
    h, w = shape
    return NYU_KINECT if (h, w) == (480, 640) else NYU_KINECT.scaled(w / 640.0, h / 480.0)


def _cityscapes_cameras(layout: Path, raw: Path) -> CameraOf:
    frames_tsv = layout / "frames.tsv"
    if not frames_tsv.is_file():
        raise DataFormatError(f"missing file: {frames_tsv} (a Cityscapes layout written by `prepare cityscapes`)")
    names: dict[int, tuple[str, str, str]] = {}
    for line in frames_tsv.read_text().splitlines()[1:]:
        index, split, city, name = line.split("\t")
        names[int(index)] = (split, city, name)

    def camera(frame: int, shape: tuple[int, int]) -> CameraIntrinsics:
        split, city, name = names[frame]
        path = raw / "camera" / split / city / f"{name}_camera.json"
        try:
            k = json.loads(path.read_text())["intrinsic"]
            return CameraIntrinsics(float(k["fx"]), float(k["fy"]), float(k["u0"]), float(k["v0"]))
        except FileNotFoundError:
            raise DataFormatError(f"missing file: {path} (the raw Cityscapes camera package)") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise DataFormatError(f"{path}: expected intrinsic.fx, fy, u0, v0 ({exc})") from exc

    return camera


def _synthetic_cameras(layout: Path) -> CameraOf:
    from asymfusion.datasets.synthetic.render import intrinsics
    from asymfusion.datasets.synthetic.scene import sample_camera, sample_scene

    meta_path = layout.parent / "meta.json"
    try:
        args = json.loads(meta_path.read_text())["arguments"]
        seed, size, n_train, vps = int(args["seed"]), int(args["size"]), int(args["n_train"]), int(args["views_per_scene"])
    except FileNotFoundError:
        raise DataFormatError(f"missing file: {meta_path} (written by `asymfusion prepare synthetic`)") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(f"{meta_path}: expected arguments.seed, size, n_train, views_per_scene ({exc})") from exc
    train_scenes = -(-n_train // vps)

    def camera(frame: int, shape: tuple[int, int]) -> CameraIntrinsics:
        scene, view = divmod(frame, vps) if frame < n_train else divmod(frame - n_train, vps)
        if frame >= n_train:
            scene += train_scenes
        if shape != (size, size):
            raise DataFormatError(f"synthetic frame {frame}: {shape[1]}x{shape[0]}, but {meta_path} says {size}")
        cam = sample_camera(sample_scene(seed, scene), seed, scene, view)
        fx, fy, cx, cy = (float(v) for v in intrinsics(size, cam.fov))
        return CameraIntrinsics(fx, fy, cx, cy)

    return camera


def camera_source(camera: str, layout: Path, raw: Path | None = None) -> CameraOf:
    """The intrinsics of each frame of `layout`, for the camera kinds of the module docstring."""
    if camera == "nyudv2":
        return _nyu_camera
    if camera == "cityscapes":
        if raw is None:
            raise ValueError("camera 'cityscapes' needs the raw folder with the camera package (--raw)")
        return _cityscapes_cameras(layout, Path(raw))
    if camera == "synthetic":
        return _synthetic_cameras(layout)
    raise ValueError(f"unknown camera {camera!r}; allowed: {', '.join(CAMERAS)}")


def _one(job: tuple[str, int], layout: Path, staging: Path, camera_of: CameraOf, depth_scale: float
         ) -> tuple[str, list[float], float]:
    depth_rel, frame = job
    depth_png = read_png(layout / depth_rel)
    if depth_png.ndim != 2 or depth_png.dtype != np.uint16:
        raise DataFormatError(f"{layout / depth_rel}: expected a single-channel uint16 depth PNG, got "
                              f"{depth_png.dtype} {depth_png.shape}")
    camera = camera_of(frame, depth_png.shape)
    start = time.perf_counter()
    channels = hha(depth_png.astype(np.float64) / depth_scale, camera)
    seconds = time.perf_counter() - start
    write_png(hha_frame_path(staging, depth_rel), encode_hha(channels))
    return Path(depth_rel).stem, [camera.fx, camera.fy, camera.cx, camera.cy], seconds


def write_hha_layout(
    layout: str | Path,
    out: str | Path,
    *,
    camera: str,
    depth_scale: float,
    raw: str | Path | None = None,
    workers: int = 1,
    progress_bar: bool = True,
) -> dict[str, Any]:
    """Write the HHA image of every frame of `layout` into `out` (replaced only once complete); returns a summary."""
    layout, out = Path(layout), Path(out)
    rows: list[list[str]] = []
    for split in SPLITS:
        path = layout / f"{split}.txt"
        if not path.is_file():
            raise DataFormatError(f"missing file: {path} (a segmentation layout written by `prepare`)")
        rows += read_list(path)
    if any(len(row) < 3 for row in rows):
        raise DataFormatError(f"{layout}: list rows need 3 columns (rgb, mask, depth)")
    jobs = sorted({(row[2], _frame_number(row[2])) for row in rows})
    camera_of = camera_source(camera, layout, Path(raw) if raw is not None else None)
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    work = partial(_one, layout=layout, staging=staging, camera_of=camera_of, depth_scale=depth_scale)
    start = time.perf_counter()
    try:
        if workers > 1:
            with get_context("fork").Pool(workers) as pool:
                done = list(progress(pool.imap(work, jobs, chunksize=8), len(jobs), "hha", progress_bar))
        else:
            done = [work(job) for job in progress(jobs, len(jobs), "hha", progress_bar)]
        seconds = [s for _, _, s in done]
        summary = {
            "layout": str(layout), "camera": camera, "frames": len(jobs), "depth_scale": depth_scale,
            "encoding": "uint8 RGB = 310/max(depth, 1 m), height above the floor in cm, angle with gravity + 38 "
                        "degrees (datasets/hha.py); 0 where depth is missing",
            "seconds": round(time.perf_counter() - start, 2),
            "seconds_per_frame_hha": round(float(np.mean(seconds)), 4) if seconds else None,
            "cameras": {name: camera for name, camera, _ in done},  # fx, fy, cx, cy: HHA of corrupted depth
        }
        atomic_write(staging / HHA_INFO, json.dumps(summary, indent=2) + "\n")
        if out.exists():
            aside = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(aside)
            staging.rename(out)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary
