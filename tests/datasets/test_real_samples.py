"""Real NYUv2, Cityscapes and Taskonomy files (../shared/real-samples) through the prepare code and the loaders.

The files are read in place (or symlinked into tmp_path); nothing is copied into the repository.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asymfusion.datasets import SegmentationDataset, TranslationDataset
from asymfusion.datasets.formats import DEPTH_SCALE, TASKONOMY_DEPTH_SCALE, read_png, write_list
from asymfusion.datasets.prepare import prepare_cityscapes, prepare_taskonomy
from asymfusion.datasets.prepare.common import write_seg_frame
from asymfusion.datasets.prepare.nyudv2 import encode_frame, label40_to_mask
from asymfusion.datasets.translation import CEN_MAXIMA

from .conftest import REAL_SAMPLES

pytestmark = pytest.mark.skipif(
    not REAL_SAMPLES.is_dir(), reason=f"real samples not present at {REAL_SAMPLES} (shared/ is not checked out)"
)

BASELINE, FX = 0.209313, 2262.52  # aachen_000001_000019_camera.json


def test_cityscapes_aachen_frame_prepared_and_loaded(tmp_path: Path) -> None:
    raw = REAL_SAMPLES / "cityscapes"  # native Cityscapes layout: leftImg8bit, gtFine, disparity, camera
    out = tmp_path / "cityscapes"
    summary = prepare_cityscapes(raw, out, expected={"train": 1, "val": 0}, progress_bar=False)
    assert summary["train"] == 1
    data = SegmentationDataset(out, "train", ["rgb", "depth"], num_classes=19)
    sample = data.load_raw(0)
    assert sample["rgb"].shape == (1024, 2048, 3) and sample["depth"].shape == sample["target"].shape == (1024, 2048)
    labels = np.unique(sample["target"])
    assert set(labels.tolist()) <= set(range(19)) | {255}
    assert {0, 2, 8, 10, 13} <= set(labels.tolist())  # road, building, vegetation, sky, car
    # The bottom rows are road (train id 0) and the ego vehicle / border ids map to ignore.
    label_ids = read_png(raw / "gtFine/train/aachen/aachen_000001_000019_gtFine_labelIds.png")
    assert (sample["target"][label_ids == 7] == 0).all() and (sample["target"][label_ids == 1] == 255).all()

    disparity = read_png(raw / "disparity/train/aachen/aachen_000001_000019_disparity.png").astype(np.float64)
    invalid = disparity <= 1
    assert 0.05 < invalid.mean() < 0.25  # about 13 % of the disparity map is invalid
    assert (sample["depth"][invalid] == 0).all() and (sample["depth"][~invalid] > 0).all()
    metres = sample["depth"].astype(np.float64) * DEPTH_SCALE / summary["depth_scale"]  # undo the loader's 1/5000
    expect = BASELINE * FX / ((disparity[~invalid] - 1) / 256)
    near = expect < 250
    assert np.allclose(metres[~invalid][near], expect[near], atol=0.5 / 256 + 1e-6)
    road = (label_ids == 7) & ~invalid
    assert 2.0 < float(np.median(metres[road])) < 40.0  # road in front of the car: metres, not kilometres


def test_nyu_frames_in_cen_encoding_through_the_layout(tmp_path: Path) -> None:
    base = REAL_SAMPLES / "nyuv2" / "multi-task-refinenet"
    out = tmp_path / "nyudv2"
    rows = {}
    originals = {}
    for folder, index in (("ExpNYUD_three", 433), ("ExpNYUD_joint", 464)):
        rgb = read_png(base / folder / f"{index:06d}.png")
        mask = read_png(base / folder / f"segm_gt_{index:06d}.png")  # 0..39, 255 = void
        depth_png = read_png(base / folder / f"depth_gt_{index:06d}.png")  # uint16, 1/5000 m
        rgb8, mask8, depth16 = encode_frame(rgb, mask, depth_png / 5000.0)  # via metres, as prepare does
        assert np.array_equal(depth16, depth_png)  # the encoding round-trips the real file exactly
        rows[index] = write_seg_frame(out, index, rgb8, mask8, depth16)
        originals[index] = (mask, depth_png)
    write_list(out / "train.txt", [rows[433]])
    write_list(out / "val.txt", [rows[464]])
    for split, index in (("train", 433), ("val", 464)):
        data = SegmentationDataset(out, split, ["rgb", "depth"], num_classes=40)
        sample = data.load_raw(0)
        mask, depth_png = originals[index]
        assert sample["rgb"].shape == (480, 640, 3) and sample["target"].shape == sample["depth"].shape == (480, 640)
        assert np.array_equal(sample["target"], mask)
        assert set(np.unique(sample["target"]).tolist()) <= set(range(40)) | {255}
        assert np.allclose(sample["depth"], depth_png / 5000.0)
        valid = sample["depth"][sample["depth"] > 0]
        assert 0.3 < valid.min() and valid.max() < 10.0  # an indoor room, in metres
        assert data[0]["target"].shape == (480, 640)


def test_nyu_frame_1_label40_and_metric_depth_through_the_prepare_encoding(tmp_path: Path) -> None:
    sagate = REAL_SAMPLES / "nyuv2" / "sagate_NYUDepthv2"
    rgb = read_png(sagate / "RGB" / "0.jpg")
    label40 = read_png(sagate / "Label" / "0.png")  # 0 = void, 1..40
    depth_m = np.load(sagate / "Depth" / "0.npy")  # float32 metres (in-painted)
    rgb8, mask8, depth16 = encode_frame(rgb, label40_to_mask(label40), depth_m)
    row = write_seg_frame(tmp_path, 1, rgb8, mask8, depth16)
    write_list(tmp_path / "val.txt", [row])
    sample = SegmentationDataset(tmp_path, "val", ["rgb", "depth"], num_classes=40).load_raw(0)
    assert np.array_equal(sample["target"] == 255, label40 == 0)
    assert np.array_equal(sample["target"][label40 > 0], label40[label40 > 0] - 1)
    assert np.allclose(sample["depth"], depth_m, atol=0.5 / 5000 + 1e-6)
    hha_depth = read_png(REAL_SAMPLES / "nyuv2" / "depth2hha_demo" / "0.png") / 10000.0  # the same frame, 1e-4 m
    assert np.allclose(sample["depth"], hha_depth, atol=2e-4)


def _taskonomy_raw(tmp_path: Path, points: dict[str, str], domains: list[str]) -> Path:
    raw = tmp_path / "raw"
    for point in points.values():
        for domain in domains:
            link = raw / domain / f"{point}_domain_{domain}.png"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(REAL_SAMPLES / "taskonomy" / link.name)
    for split, point in points.items():
        (raw / f"{split}_domain.txt").write_text("{domain}/%s_domain_{domain}.png" % point)
    return raw


def test_taskonomy_point_202_view_5_to_rgb(tmp_path: Path) -> None:
    all_domains = ["rgb", "normal", "reshading", "depth_zbuffer", "depth_euclidean", "edge_texture",
                   "edge_occlusion", "principal_curvature"]
    raw = _taskonomy_raw(tmp_path, {"train": "point_202_view_5"}, all_domains)
    out = tmp_path / "taskonomy"
    summary = prepare_taskonomy(raw, out, link="symlink", expected=None, splits=("train",), progress_bar=False)
    assert summary["sizes"] == ["512x512"]
    data = TranslationDataset(out, "train", ["reshading", "depth_zbuffer", "edge_texture"], target="rgb")
    sample = data.load_raw(0)
    assert sample["target"].shape == (512, 512, 3)
    assert all(sample[k].shape == (512, 512) for k in ("reshading", "depth_zbuffer", "edge_texture"))
    depth = read_png(raw / "depth_zbuffer" / "point_202_view_5_domain_depth_zbuffer.png").astype(np.float64)
    valid = depth < 65535
    assert 0.03 < (~valid).mean() < 0.15  # about 7.7 % missing geometry
    metres = depth[valid] / TASKONOMY_DEPTH_SCALE
    assert 0.9 < metres.min() and metres.max() < 9.0  # an indoor viewpoint, 1.0 to 8.1 m
    expect = np.clip(np.log1p(depth) * 255 / CEN_MAXIMA["depth_zbuffer"], 0, 255).astype(np.uint8) / 255.0
    assert np.allclose(sample["depth_zbuffer"], expect)
    edge = read_png(raw / "edge_texture" / "point_202_view_5_domain_edge_texture.png")
    assert edge.dtype == np.uint16 and edge.max() < CEN_MAXIMA["edge_texture"]
    tensors = data[0]
    assert tensors["target"].shape == (3, 512, 512) and tensors["depth_zbuffer"].shape == (1, 512, 512)
    assert all(-1 <= float(t.min()) and float(t.max()) <= 1 for t in tensors.values())


def test_taskonomy_two_real_viewpoints_as_train_and_val(tmp_path: Path) -> None:
    shared = ["rgb", "normal", "reshading", "edge_texture"]
    raw = _taskonomy_raw(tmp_path, {"train": "point_202_view_5", "val": "point_21_view_2"}, shared)
    out = tmp_path / "taskonomy"
    prepare_taskonomy(raw, out, domains=shared, link="symlink", expected={"train": 1, "val": 1}, progress_bar=False)
    for split in ("train", "val"):
        data = TranslationDataset(out, split, ["normal", "edge_texture"], target="rgb")
        assert data[0]["normal"].shape == (3, 512, 512)
