"""Preparing tiny fixtures in each real raw format, then reading them back through the loaders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from asymfusion.datasets import SegmentationDataset, TranslationDataset
from asymfusion.datasets.formats import DataFormatError, read_list, read_png
from asymfusion.datasets.prepare import prepare_cityscapes, prepare_nyudv2, prepare_taskonomy
from asymfusion.datasets.prepare.cityscapes import LABEL_TO_TRAIN_ID, disparity_to_depth
from asymfusion.datasets.prepare.nyudv2 import label40_to_mask, load_class_mapping
from asymfusion.datasets.translation import CEN_MAXIMA

from .fixtures import CITYSCAPES_FRAMES, write_cityscapes_raw, write_nyu_raw, write_taskonomy_raw

# ------------------------------------------------------------------------------------------------------------------
# NYUDv2
# ------------------------------------------------------------------------------------------------------------------


def test_nyu_fixture_is_a_v73_file_behind_a_matlab_header(tmp_path: Path) -> None:
    write_nyu_raw(tmp_path)
    head = (tmp_path / "nyu_depth_v2_labeled.mat").read_bytes()[:600]
    assert head.startswith(b"MATLAB 7.3 MAT-file") and head[126:128] == b"IM"
    assert head[512:520] == b"\x89HDF\r\n\x1a\n"  # the HDF5 superblock starts after the 512-byte user block


def test_prepare_nyudv2_mapping_depth_split_and_loader(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "nyudv2"
    made = write_nyu_raw(raw)
    arrays, mapping = made["arrays"], made["mapping"]
    summary = prepare_nyudv2(raw, out, expected=(6, 3, 3), progress_bar=False)
    assert (summary["frames"], summary["train"], summary["val"]) == (6, 3, 3)
    assert summary["size"] == [16, 12] and summary["depth_scale"] == 5000.0

    # Lists: the official split in order, CEN naming (%06d of the 1-based index), rgb<TAB>masks<TAB>depth.
    assert (out / "train.txt").read_text().splitlines()[0] == "rgb/000003.png\tmasks/000003.png\tdepth/000003.png"
    assert [r[0] for r in read_list(out / "train.txt")] == [f"rgb/{i:06d}.png" for i in made["train"]]
    assert [r[1] for r in read_list(out / "val.txt")] == [f"masks/{i:06d}.png" for i in made["test"]]

    for i in range(6):
        name = f"{i + 1:06d}.png"
        assert np.array_equal(read_png(out / "rgb" / name), arrays["images"][i])  # transposes undone
        label40 = np.concatenate([[0], mapping])[arrays["labels"][i]]
        mask = read_png(out / "masks" / name)
        assert np.array_equal(mask[label40 == 0], np.full((label40 == 0).sum(), 255))
        assert np.array_equal(mask[label40 > 0], label40[label40 > 0] - 1)
        assert mask.max() == 255 and mask[mask != 255].max() <= 39
        depth = read_png(out / "depth" / name)
        assert depth.dtype == np.uint16
        assert np.array_equal(depth, np.round(arrays["depths"][i].astype(np.float64) * 5000).astype(np.uint16))

    data = SegmentationDataset(out, "train", ["rgb", "depth"], num_classes=40)
    raw_sample = data.load_raw(0)  # frame 3
    assert raw_sample["rgb"].shape == (12, 16, 3) and raw_sample["depth"].shape == (12, 16)
    assert np.allclose(raw_sample["depth"], arrays["depths"][2], atol=0.5 / 5000 + 1e-6)
    sample = data[0]
    assert sample["target"].shape == (12, 16) and int(sample["target"][0, 0]) == 255  # row 0 is unlabeled
    assert json.loads((out / "layout.json").read_text())["depth_source"] == "depths"


def test_prepare_nyudv2_raw_depth_keeps_holes(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    write_nyu_raw(raw)
    prepare_nyudv2(raw, out, depth="raw", expected=None, progress_bar=False)
    depth = read_png(out / "depth" / "000001.png")
    assert (depth[:, :2] == 0).all() and (depth[:, 2:] > 0).all()


def test_prepare_nyudv2_checks_counts_and_inputs(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_nyu_raw(raw)
    with pytest.raises(DataFormatError, match="6 frames, expected 1449"):
        prepare_nyudv2(raw, tmp_path / "out", progress_bar=False)
    (raw / "splits.mat").unlink()
    with pytest.raises(DataFormatError, match="splits.mat"):
        prepare_nyudv2(raw, tmp_path / "out", expected=None, progress_bar=False)
    raw2 = tmp_path / "raw2"
    write_nyu_raw(raw2, train=[1, 2], test=[2, 3, 4, 5])  # overlapping split
    with pytest.raises(DataFormatError, match="overlap"):
        prepare_nyudv2(raw2, tmp_path / "out", expected=None, progress_bar=False)
    (raw2 / "nyu_depth_v2_labeled.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 200)
    with pytest.raises(DataFormatError, match="not a MATLAB v7.3"):
        prepare_nyudv2(raw2, tmp_path / "out", expected=None, progress_bar=False)


def test_class_mapping_lookup(tmp_path: Path) -> None:
    write_nyu_raw(tmp_path)
    lut = load_class_mapping(tmp_path / "classMapping40.mat")
    assert lut.shape == (895,) and lut[0] == 0 and lut[1:].min() == 1 and lut[1:].max() == 40
    assert label40_to_mask(np.array([0, 1, 40])).tolist() == [255, 0, 39]


# ------------------------------------------------------------------------------------------------------------------
# Cityscapes
# ------------------------------------------------------------------------------------------------------------------


def test_prepare_cityscapes_train_ids_disparity_depth_and_loader(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "cityscapes"
    frames = write_cityscapes_raw(raw)
    summary = prepare_cityscapes(raw, out, expected={"train": 2, "val": 1}, progress_bar=False)
    assert (summary["train"], summary["val"], summary["depth_scale"]) == (2, 1, 256.0)
    tsv = (out / "frames.tsv").read_text().splitlines()
    assert tsv[1:] == ["000001\ttrain\taachen\taachen_000000_000019", "000002\ttrain\tbochum\tbochum_000000_000313",
                       "000003\tval\tfrankfurt\tfrankfurt_000000_000294"]
    names = [name for split in ("train", "val") for _, name in CITYSCAPES_FRAMES[split]]
    for index, name in enumerate(names, 1):
        f = frames[name]
        stem = f"{index:06d}.png"
        mask = read_png(out / "masks" / stem)
        for label_id in range(34):
            want = LABEL_TO_TRAIN_ID.get(label_id, 255)
            assert (mask[f["label_ids"] == label_id] == want).all()
        assert np.array_equal(read_png(out / "rgb" / stem), f["rgb"])
        depth = read_png(out / "depth" / stem).astype(np.float64)
        p = f["disparity"].astype(np.float64)
        with np.errstate(divide="ignore"):
            metres = f["baseline"] * f["fx"] / ((p - 1) / 256)
        valid = p > 1
        expect = np.clip(np.round(metres * 256), 1, 65535)
        assert np.array_equal(depth[valid], expect[valid])
        assert depth[0, 0] == 0 and depth[0, 1] == 0  # p = 0 and p = 1 are invalid
        assert depth[0, 2] == 65535  # d = 1 px -> ~450 m, beyond 256 m: saturated
        assert depth[0, 3] == np.clip(np.round(f["baseline"] * f["fx"] / 2 * 256), 1, 65535)  # d = 2 px
    assert read_list(out / "val.txt") == [["rgb/000003.png", "masks/000003.png", "depth/000003.png"]]

    data = SegmentationDataset(out, "train", ["rgb", "depth"], num_classes=19)
    sample = data.load_raw(1)
    assert sample["rgb"].shape == (16, 32, 3) and sample["target"].shape == (16, 32)
    # The loader divides by 5000; with the Cityscapes scale of 256 the metres come back by x 5000 / 256.
    f = frames["bochum_000000_000313"]
    p = float(f["disparity"][5, 5])
    metres = f["baseline"] * f["fx"] / ((p - 1) / 256)
    assert sample["depth"][5, 5] * 5000 / 256 == pytest.approx(min(metres, 65535 / 256), abs=1 / 256)


def test_cityscapes_label_table_matches_cityscapesscripts() -> None:
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    official = {lab.id: lab.trainId for lab in labels.labels if lab.trainId not in (255, -1) and lab.id >= 0}
    assert official == LABEL_TO_TRAIN_ID


def test_disparity_conversion() -> None:
    disparity = np.array([[0, 1, 257, 2 * 256 + 1]], dtype=np.uint16)
    depth = disparity_to_depth(disparity, baseline=0.209313, fx=2262.52)
    assert np.isnan(depth[0, :2]).all()
    assert depth[0, 2] == pytest.approx(0.209313 * 2262.52)
    assert depth[0, 3] == pytest.approx(0.209313 * 2262.52 / 2)


def test_prepare_cityscapes_names_missing_files(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_cityscapes_raw(raw)
    with pytest.raises(DataFormatError, match="2 frames, expected 2975"):
        prepare_cityscapes(raw, tmp_path / "out", progress_bar=False)
    camera = raw / "camera/val/frankfurt/frankfurt_000000_000294_camera.json"
    camera.unlink()
    with pytest.raises(DataFormatError, match="frankfurt_000000_000294_camera.json"):
        prepare_cityscapes(raw, tmp_path / "out", expected=None, progress_bar=False)


# ------------------------------------------------------------------------------------------------------------------
# Taskonomy
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("link", ["hardlink", "symlink", "copy"])
def test_prepare_taskonomy_keeps_files_and_feeds_the_loader(tmp_path: Path, link: str) -> None:
    raw, out = tmp_path / "raw", tmp_path / "taskonomy"
    lists = write_taskonomy_raw(raw)
    summary = prepare_taskonomy(raw, out, link=link, expected={"train": 3, "val": 2}, progress_bar=False)
    assert summary["sizes"] == ["16x16"] and (summary["train"], summary["val"]) == (3, 2)
    assert [r[0] for r in read_list(out / "train.txt")] == lists["train"]
    name = lists["train"][1].format(domain="depth_zbuffer")
    assert (out / name).read_bytes() == (raw / name).read_bytes()  # encodings unchanged

    data = TranslationDataset(out, "train", ["reshading", "depth_zbuffer", "edge_texture"], target="rgb")
    sample = data.load_raw(1)
    depth = read_png(raw / name).astype(np.float64)
    expect = np.clip(np.log1p(depth) * 255 / CEN_MAXIMA["depth_zbuffer"], 0, 255).astype(np.uint8) / 255.0
    assert np.allclose(sample["depth_zbuffer"], expect)
    assert depth[0, 0] == 65535 and sample["depth_zbuffer"][0, 0] == 254 / 255  # invalid -> near the top (CEN)
    edge = read_png(raw / lists["train"][1].format(domain="edge_texture")).astype(np.float64)
    assert np.allclose(sample["edge_texture"], np.clip(edge * 255 / 11355, 0, 255).astype(np.uint8) / 255.0)
    assert sample["target"].shape == (16, 16, 3) and sample["reshading"].shape == (16, 16)
    tensors = data[0]
    assert all(float(t.min()) >= -1 and float(t.max()) <= 1 for t in tensors.values())


def test_prepare_taskonomy_in_place_and_checks(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    lists = write_taskonomy_raw(raw)
    prepare_taskonomy(raw, raw, expected=None, progress_bar=False)  # the raw folder itself as the layout
    assert read_list(raw / "val.txt")[0][0] == lists["val"][0]
    with pytest.raises(DataFormatError, match="3 viewpoints, expected 1000"):
        prepare_taskonomy(raw, tmp_path / "out", progress_bar=False)
    bad = raw / lists["val"][0].format(domain="edge_occlusion")
    from asymfusion.datasets.formats import write_png

    write_png(bad, np.zeros((16, 16), dtype=np.uint8))  # an 8-bit edge image: not the sample's encoding
    with pytest.raises(DataFormatError, match="edge_occlusion.*16-bit"):
        prepare_taskonomy(raw, tmp_path / "out", expected=None, progress_bar=False)
    bad.unlink()
    with pytest.raises(DataFormatError, match="1 listed Taskonomy file"):
        prepare_taskonomy(raw, tmp_path / "out", expected=None, progress_bar=False)
    prepare_taskonomy(raw, tmp_path / "out", domains=["rgb", "reshading"], expected=None, progress_bar=False)
