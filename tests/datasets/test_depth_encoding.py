"""data.depth_encoding (datasets/depth_encoding.py): raw, disparity and HHA through the real segmentation loader,
and corruptions applied before the encoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from asymfusion.datasets.config import DataConfig
from asymfusion.datasets.corruptions import Corruption
from asymfusion.datasets.depth_encoding import IMAGENET_MEAN, IMAGENET_STD
from asymfusion.datasets.formats import DataFormatError
from asymfusion.datasets.prepare.hha import write_hha_layout
from asymfusion.datasets.segmentation import SegmentationDataset
from asymfusion.datasets.synthetic import render_dataset
from asymfusion.datasets.tasks import data_task


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("enc")
    render_dataset(root / "synthetic", size=48, n_train=2, n_val=2, seed=1, progress=False)
    seg = root / "synthetic" / "segmentation"
    write_hha_layout(seg, root / "hha", camera="synthetic", depth_scale=5000.0, progress_bar=False)
    return seg, root / "hha"


def _dataset(layout, encoding: str) -> SegmentationDataset:
    seg, hha_root = layout
    return SegmentationDataset(seg, "val", ["rgb", "depth"], 11, depth_encoding=encoding, hha_root=hha_root)


def test_raw_disparity_and_hha_are_the_same_measurement_in_three_encodings(layout) -> None:
    raw, disparity, hha = (_dataset(layout, e)[0]["depth"] for e in ("raw", "disparity", "hha"))
    assert raw.shape == disparity.shape == (1, 48, 48) and hha.shape == (3, 48, 48)
    valid = raw > 0
    torch.testing.assert_close(disparity[valid], 1.0 / raw[valid])
    assert (disparity[~valid] == 0).all()
    stored = np.asarray(__import__("PIL.Image").Image.open(layout[1] / "000002.png"))
    expected = (stored.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    torch.testing.assert_close(hha, torch.from_numpy(expected.transpose(2, 0, 1)))


def test_a_depth_corruption_reaches_the_hha_input_through_the_recorded_camera(layout) -> None:
    from asymfusion.benchmark.engine.robustness import CorruptedView
    from asymfusion.datasets.corruptions import apply_corruption
    from asymfusion.datasets.hha import CameraIntrinsics, encode_hha, hha

    ds = _dataset(layout, "hha")
    clean = ds[0]
    corruption = Corruption("depth", "quantisation", 5)
    corrupted = CorruptedView(ds, corruption, seed=0)[0]
    quantised = apply_corruption(ds.load_raw(0), corruption, 0, 0)["depth"]
    camera = CameraIntrinsics(*ds.hha.cameras[ds.path(0, "depth").stem])
    expected = (encode_hha(hha(quantised, camera)).astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    torch.testing.assert_close(corrupted["depth"], torch.from_numpy(expected.transpose(2, 0, 1)))
    assert not torch.equal(clean["depth"], corrupted["depth"])
    torch.testing.assert_close(clean["rgb"], corrupted["rgb"])
    torch.testing.assert_close(ds[0]["depth"], clean["depth"])  # the loader itself never corrupts


def test_hha_without_its_images_names_the_command_that_writes_them(layout, tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="asymfusion prepare hha"):
        SegmentationDataset(layout[0], "val", ["rgb", "depth"], 11, depth_encoding="hha", hha_root=tmp_path)


def test_hha_gives_the_depth_branch_three_channels_and_is_refused_where_it_means_nothing() -> None:
    seg = data_task("segmentation")
    assert seg.channels(DataConfig(dataset="x", modalities=["rgb", "depth"], depth_encoding="hha"))["depth"] == 3
    assert seg.channels(DataConfig(dataset="x", modalities=["rgb", "depth"]))["depth"] == 1
    with pytest.raises(ValueError, match="needs the depth modality"):
        seg.check_data(DataConfig(dataset="x", modalities=["rgb"], depth_encoding="hha"), None)
    with pytest.raises(ValueError, match="applies to segmentation depth"):
        data_task("translation").check_data(
            DataConfig(dataset="x", modalities=["depth_zbuffer"], target="rgb", depth_encoding="disparity"), None)
