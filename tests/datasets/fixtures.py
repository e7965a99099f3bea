"""Tiny files in each real raw format, written by the tests (nothing here is real data)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import scipy.io

from asymfusion.datasets.formats import TASKONOMY_DEPTH_SCALE, TRANSLATION_DOMAINS, write_png

MATLAB_73_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."


def _matlab_userblock() -> bytes:
    text = MATLAB_73_HEADER.ljust(116, b" ")
    return text + b"\x00" * 8 + b"\x00\x02" + b"IM"  # subsys offset, version 0x0200, endian indicator


def write_nyu_mat(path: Path, n: int = 6, h: int = 12, w: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """A labeled-set-like v7.3 file: HDF5 behind a 512-byte MATLAB header, arrays stored transposed."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    labels = rng.integers(0, 895, (n, h, w)).astype(np.uint16)
    labels[:, 0, :] = 0  # an unlabeled row
    depths = rng.uniform(0.5, 9.9, (n, h, w)).astype(np.float32)
    raw = depths.copy()
    raw[:, :, :2] = 0.0  # Kinect holes
    with h5py.File(path, "w", userblock_size=512) as f:
        for key, array, cls in (
            ("images", images.transpose(0, 3, 2, 1), b"uint8"),  # MATLAB (H, W, 3, N) seen by h5py as (N, 3, W, H)
            ("labels", labels.transpose(0, 2, 1), b"uint16"),
            ("depths", depths.transpose(0, 2, 1), b"single"),
            ("rawDepths", raw.transpose(0, 2, 1), b"single"),
        ):
            ds = f.create_dataset(key, data=np.ascontiguousarray(array))
            ds.attrs["MATLAB_class"] = np.bytes_(cls)
        f.create_dataset("sceneTypes", data=np.zeros((1, n), dtype=np.uint64))
    with open(path, "r+b") as handle:
        handle.write(_matlab_userblock())
    return {"images": images, "labels": labels, "depths": depths, "rawDepths": raw}


def nyu_mapping() -> np.ndarray:
    """A deterministic stand-in for classMapping40's mapClass (894 values in 1..40)."""
    return ((np.arange(894) * 7) % 40 + 1).astype(np.uint8)


def write_class_mapping(path: Path) -> np.ndarray:
    mapping = nyu_mapping()
    names = np.empty((1, 40), dtype=object)
    for i in range(40):
        names[0, i] = f"class{i + 1}"
    scipy.io.savemat(path, {"mapClass": mapping[None, :], "className": names})
    return mapping


def write_splits(path: Path, train: list[int], test: list[int]) -> None:
    scipy.io.savemat(
        path,
        {"trainNdxs": np.array(train, dtype=np.uint16)[:, None], "testNdxs": np.array(test, dtype=np.uint16)[:, None]},
    )


def write_nyu_raw(raw: Path, train: list[int] | None = None, test: list[int] | None = None) -> dict[str, object]:
    raw.mkdir(parents=True, exist_ok=True)
    train = train or [3, 4, 5]
    test = test or [1, 2, 6]
    arrays = write_nyu_mat(raw / "nyu_depth_v2_labeled.mat", n=len(train) + len(test))
    mapping = write_class_mapping(raw / "classMapping40.mat")
    write_splits(raw / "splits.mat", train, test)
    return {"arrays": arrays, "mapping": mapping, "train": train, "test": test}


CITYSCAPES_FRAMES = {
    "train": [("aachen", "aachen_000000_000019"), ("bochum", "bochum_000000_000313")],
    "val": [("frankfurt", "frankfurt_000000_000294")],
}


def write_cityscapes_raw(raw: Path, h: int = 16, w: int = 32, seed: int = 0) -> dict[str, dict[str, object]]:
    """Cityscapes-named files: leftImg8bit RGB, gtFine labelIds, 16-bit disparity and a camera json per frame."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, object]] = {}
    for k, (split, frames) in enumerate(CITYSCAPES_FRAMES.items()):
        for j, (city, name) in enumerate(frames):
            rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            label_ids = rng.integers(0, 34, (h, w), dtype=np.uint8)
            disparity = rng.integers(2, 30000, (h, w)).astype(np.uint16)
            disparity[0, :4] = [0, 1, 257, 513]  # invalid, d = 0, d = 1 px, d = 2 px
            baseline, fx = 0.2 + 0.01 * (k + j), 2200.0 + 10 * (k + j)  # each frame its own camera
            write_png(raw / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", rgb)
            write_png(raw / "gtFine" / split / city / f"{name}_gtFine_labelIds.png", label_ids)
            write_png(raw / "disparity" / split / city / f"{name}_disparity.png", disparity)
            camera = {"extrinsic": {"baseline": baseline, "pitch": 0.038, "roll": 0.0, "x": 1.7, "y": 0.1,
                                    "yaw": -0.0195, "z": 1.22},
                      "intrinsic": {"fx": fx, "fy": fx, "u0": w / 2, "v0": h / 2}}
            path = raw / "camera" / split / city / f"{name}_camera.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(camera, indent=4))
            out[name] = {"split": split, "rgb": rgb, "label_ids": label_ids, "disparity": disparity,
                         "baseline": baseline, "fx": fx}
    return out


def taskonomy_domain_array(domain: str, rng: np.random.Generator, size: int) -> np.ndarray:
    if domain in ("rgb", "normal", "principal_curvature"):
        return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    if domain == "reshading":
        grey = rng.integers(0, 256, (size, size), dtype=np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)  # the sample stores reshading as RGB with equal channels
    if domain.startswith("depth"):
        depth = (rng.uniform(0.5, 20.0, (size, size)) * TASKONOMY_DEPTH_SCALE).astype(np.uint16)
        depth[0, :3] = 65535  # missing geometry
        return depth
    return rng.integers(0, 12000, (size, size)).astype(np.uint16)  # edge_* (16-bit)


def write_taskonomy_raw(
    raw: Path, train: list[tuple[int, int]] | None = None, val: list[tuple[int, int]] | None = None,
    domains: tuple[str, ...] = TRANSLATION_DOMAINS, size: int = 16, seed: int = 0,
) -> dict[str, list[str]]:
    """Taskonomy-named PNGs for every domain, plus CEN-style list files (no trailing newline, like CEN's)."""
    rng = np.random.default_rng(seed)
    train = train or [(0, 1), (5, 0), (12, 3)]
    val = val or [(7, 2), (9, 0)]
    lists: dict[str, list[str]] = {}
    for split, points in (("train", train), ("val", val)):
        templates = []
        for point, view in points:
            template = "{domain}/point_%d_view_%d_domain_{domain}.png" % (point, view)
            for domain in domains:
                write_png(raw / template.format(domain=domain), taskonomy_domain_array(domain, rng, size))
            templates.append(template)
        (raw / f"{split}_domain.txt").write_text("\n".join(templates))
        lists[split] = templates
    return lists
