"""Stand-in raw files in each real format, at any size: what the paper-suite rehearsal fetches (`--from-file`) and
prepares through the real code paths, and what the tests read. Never real data: the pixels are noise, and every
folder `write_standins` fills holds a STAND-IN.txt that says so (the format writers below, which the tests also use
on their own, mark nothing); no loader falls back to these files.

- NYUDv2: the labeled set as MATLAB v7.3 (HDF5 behind a 512-byte MATLAB header, arrays stored transposed), the
  splits.mat (trainNdxs/testNdxs) and classMapping40.mat (mapClass over the 894 raw labels);
- Cityscapes: leftImg8bit RGB, gtFine labelIds, 16-bit disparity and a camera json per frame;
- Taskonomy: `<domain>/point_<p>_view_<v>_domain_<domain>.png` for every domain, with CEN-style list files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from asymfusion.datasets.formats import TASKONOMY_DEPTH_SCALE, TRANSLATION_DOMAINS, write_png

MATLAB_73_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
MARKER = "STAND-IN.txt"


class StandInMix(ValueError):
    """Stand-in and real files would share a folder (bad input: exit 2)."""

    exit_code = 2


def mark_stand_in(folder: Path, what: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text(f"Stand-in {what} written by asymfusion (datasets/standins.py): noise in the real "
                                 "file formats, for rehearsals and tests. Not real data.\n")


def _matlab_userblock() -> bytes:
    text = MATLAB_73_HEADER.ljust(116, b" ")
    return text + b"\x00" * 8 + b"\x00\x02" + b"IM"  # subsys offset, version 0x0200, endian indicator


def write_nyu_mat(path: Path, n: int = 6, h: int = 12, w: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """A labeled-set-like v7.3 file: HDF5 behind a 512-byte MATLAB header, arrays stored transposed."""
    import h5py

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
    import scipy.io

    mapping = nyu_mapping()
    names = np.empty((1, 40), dtype=object)
    for i in range(40):
        names[0, i] = f"class{i + 1}"
    scipy.io.savemat(path, {"mapClass": mapping[None, :], "className": names})
    return mapping


def write_splits(path: Path, train: list[int], test: list[int]) -> None:
    import scipy.io

    scipy.io.savemat(
        path,
        {"trainNdxs": np.array(train, dtype=np.uint16)[:, None], "testNdxs": np.array(test, dtype=np.uint16)[:, None]},
    )


def write_nyu_raw(raw: Path, train: list[int] | None = None, test: list[int] | None = None, h: int = 12,
                  w: int = 16) -> dict[str, object]:
    """The three NYUDv2 source files (labeled set, splits, 40-class map) under `raw`; 1-based image indices."""
    raw.mkdir(parents=True, exist_ok=True)
    train = train or [3, 4, 5]
    test = test or [1, 2, 6]
    arrays = write_nyu_mat(raw / "nyu_depth_v2_labeled.mat", n=len(train) + len(test), h=h, w=w)
    mapping = write_class_mapping(raw / "classMapping40.mat")
    write_splits(raw / "splits.mat", train, test)
    return {"arrays": arrays, "mapping": mapping, "train": train, "test": test}


CITYSCAPES_FRAMES = {
    "train": [("aachen", "aachen_000000_000019"), ("bochum", "bochum_000000_000313")],
    "val": [("frankfurt", "frankfurt_000000_000294")],
}


def write_cityscapes_raw(raw: Path, h: int = 16, w: int = 32, seed: int = 0,
                         frames: dict[str, list[tuple[str, str]]] | None = None) -> dict[str, dict[str, object]]:
    """Cityscapes-named files: leftImg8bit RGB, gtFine labelIds, 16-bit disparity and a camera json per frame."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, object]] = {}
    for k, (split, split_frames) in enumerate((frames or CITYSCAPES_FRAMES).items()):
        for j, (city, name) in enumerate(split_frames):
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
        return np.repeat(grey[..., None], 3, axis=2)  # the real files store reshading as RGB with equal channels
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


# What each source's stand-in looks like, by default: the real image sizes (width, height).
REAL_SIZES = {"nyudv2": (640, 480), "cityscapes": (2048, 1024), "taskonomy": (512, 512)}
STANDIN_MANIFEST = "standins.json"


def _zip_tree(tree: Path, top: str, archive: Path) -> None:
    import zipfile

    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((tree / top).rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(tree).as_posix())


def write_standins(source: str, out: Path, *, size: tuple[int, int] | None = None, n_train: int = 2,
                   n_val: int = 1, seed: int = 0) -> list[Path]:
    """Stand-in files for `source` in `out`, in the form `asymfusion fetch SOURCE --from-file` takes them (NYUDv2:
    the three source files; Cityscapes: the four package zips; Taskonomy: a copy of the sample repository's tree
    with its list files). Returns what to pass as --from-file. `out/standins.json` records each file's sha256,
    which `fetch --stand-in` verifies instead of the published hashes (which noise cannot match)."""
    from asymfusion.datasets.artifacts import file_digests

    if source not in REAL_SIZES:
        raise ValueError(f"no stand-in for {source!r}; choose one of {', '.join(REAL_SIZES)}")
    w, h = size or REAL_SIZES[source]
    mark_stand_in(out, f"{source} files")  # the writers below only write formats; the folder says what they are
    if source == "nyudv2":
        n = n_train + n_val
        write_nyu_raw(out, train=list(range(n_val + 1, n + 1)), test=list(range(1, n_val + 1)), h=h, w=w)
        given = [out / name for name in ("nyu_depth_v2_labeled.mat", "splits.mat", "classMapping40.mat")]
    elif source == "cityscapes":
        import shutil
        import tempfile

        frames = {"train": [("aachen", f"aachen_{i:06d}_000019") for i in range(n_train)],
                  "val": [("frankfurt", f"frankfurt_{i:06d}_000294") for i in range(n_val)]}
        with tempfile.TemporaryDirectory(dir=out) as scratch:
            tree = Path(scratch)
            write_cityscapes_raw(tree, h=h, w=w, seed=seed, frames=frames)
            given = []
            for top, package in (("gtFine", "gtFine_trainvaltest.zip"), ("leftImg8bit", "leftImg8bit_trainvaltest.zip"),
                                 ("disparity", "disparity_trainvaltest.zip"), ("camera", "camera_trainvaltest.zip")):
                _zip_tree(tree, top, out / package)
                given.append(out / package)
            shutil.rmtree(tree, ignore_errors=True)
    else:
        if w != h:
            raise ValueError(f"Taskonomy views are square; got {w}x{h}")
        write_taskonomy_raw(out / "taskonomy", train=[(i, 0) for i in range(n_train)],
                            val=[(1000 + i, 0) for i in range(n_val)], size=w, seed=seed)
        for split in ("train", "val"):
            (out / "taskonomy" / f"{split}_domain.txt").rename(out / f"{split}_domain.txt")
        given = [out / "taskonomy", out / "train_domain.txt", out / "val_domain.txt"]
    hashes = {p.name: file_digests(p)[1] for p in given if p.is_file()}
    (out / STANDIN_MANIFEST).write_text(json.dumps({"source": source, "size": [w, h], "n_train": n_train,
                                                    "n_val": n_val, "seed": seed, "files": [p.name for p in given],
                                                    "sha256": hashes}, indent=1))
    return given


def read_standins(folder: Path) -> dict:
    """The manifest `write_standins` left in `folder` (the error names what is missing)."""
    path = Path(folder) / STANDIN_MANIFEST
    if not path.is_file() or not (Path(folder) / MARKER).is_file():
        raise FileNotFoundError(f"{folder} holds no stand-in files ({STANDIN_MANIFEST} and {MARKER} missing): "
                                f"write them with `asymfusion standins SOURCE --out {folder}`")
    return json.loads(path.read_text())


def write_standin_weights(backbone: str, out: Path) -> Path:
    """A stand-in for a backbone's pretrained weights: timm's randomly initialised state dict of `backbone`, saved
    as a plain tensor file, so `model.pretrained_file` exercises the real loading path (timm's
    pretrained_cfg_overlay, input-channel adaptation, features_only) without any download."""
    import timm
    import torch

    model = timm.create_model(backbone, pretrained=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    torch.save(model.state_dict(), partial)
    partial.replace(out)
    mark_stand_in(out.parent, "pretrained weights (random init)")
    return out
