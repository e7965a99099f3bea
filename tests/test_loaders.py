"""Loaders read the on-disk layouts back exactly, keep modalities aligned, and name bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from asymfusion.datasets import DataFormatError, SegmentationDataset, TranslationDataset
from asymfusion.datasets.config import TransformConfig
from asymfusion.datasets.formats import DEPTH_SCALE, read_png, write_png
from asymfusion.datasets.segmentation import IMAGENET_MEAN, IMAGENET_STD
from asymfusion.datasets.translation import preprocess_domain


def test_segmentation_round_trip_restores_depth_metres_labels_and_rgb(seg_root: Path) -> None:
    ds = SegmentationDataset(seg_root, "train", ["rgb", "depth"], num_classes=5)
    sample = ds[0]
    assert set(sample) == {"rgb", "depth", "target"}
    assert sample["rgb"].shape == (3, 24, 32) and sample["depth"].shape == (1, 24, 32)
    assert sample["target"].dtype == torch.int64
    xx = np.arange(32, dtype=np.float32)
    expected_depth = 0.5 + xx / 32 * 4
    np.testing.assert_allclose(sample["depth"][0, 5].numpy(), expected_depth, atol=0.5 / DEPTH_SCALE)
    assert sample["target"][0, 0] == 255 and sample["target"][3, 31] == 4
    raw = read_png(seg_root / "rgb" / "000000.png")
    restored = sample["rgb"].numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    np.testing.assert_allclose(restored * 255, raw, atol=1e-3)


def test_segmentation_rejects_label_outside_class_range_naming_the_file(seg_root: Path) -> None:
    write_png(seg_root / "masks" / "000000.png", np.full((24, 32), 7, dtype=np.uint8))
    ds = SegmentationDataset(seg_root, "train", ["rgb", "depth"], num_classes=5)
    with pytest.raises(DataFormatError, match=r"masks/000000.png.*\[7\].*0\.\.4"):
        ds[0]


def test_segmentation_rejects_mismatched_sizes_naming_both_files(seg_root: Path) -> None:
    write_png(seg_root / "depth" / "000000.png", np.zeros((20, 32), dtype=np.uint16))
    ds = SegmentationDataset(seg_root, "train", ["rgb", "depth"], num_classes=5)
    with pytest.raises(DataFormatError, match=r"differ in size.*rgb/000000.png 32x24.*depth/000000.png 32x20"):
        ds[0]


def test_segmentation_missing_file_is_named(seg_root: Path) -> None:
    (seg_root / "rgb" / "000001.png").unlink()
    ds = SegmentationDataset(seg_root, "train", ["rgb"], num_classes=5)
    with pytest.raises(DataFormatError, match=r"missing file: .*rgb/000001.png"):
        ds[1]


def test_segmentation_missing_list_and_short_rows_are_reported(seg_root: Path) -> None:
    with pytest.raises(DataFormatError, match=r"split list not found: .*test.txt"):
        SegmentationDataset(seg_root, "test", ["rgb"], num_classes=5)
    (seg_root / "train.txt").write_text("rgb/000000.png\tmasks/000000.png\n")
    with pytest.raises(DataFormatError, match=r"train.txt:1: expected 3 tab-separated columns"):
        SegmentationDataset(seg_root, "train", ["rgb", "depth"], num_classes=5)


def test_segmentation_depth_must_be_16_bit(seg_root: Path) -> None:
    write_png(seg_root / "depth" / "000000.png", np.zeros((24, 32), dtype=np.uint8))
    ds = SegmentationDataset(seg_root, "train", ["depth"], num_classes=5)
    with pytest.raises(DataFormatError, match=r"depth/000000.png: expected a single-channel uint16"):
        ds[0]


def test_augmentation_keeps_every_modality_aligned_with_the_target(seg_root: Path) -> None:
    cfg = TransformConfig(scale=(0.6, 1.7), crop=20, hflip=True)
    ds = SegmentationDataset(seg_root, "train", ["rgb", "depth"], num_classes=5, transform=cfg, seed=3)
    for epoch in range(6):
        ds.set_epoch(epoch)
        s = ds[0]
        assert s["rgb"].shape[-2:] == s["depth"].shape[-2:] == s["target"].shape == (20, 20)
        valid = (s["target"] != 255) & (s["depth"][0] > 0)
        # Both depth and label grow with the original x; after any flip/scale/crop they must still agree.
        depth_class = torch.clamp(((s["depth"][0] - 0.5) / 4 * 5).floor().long(), 0, 4)
        agree = (depth_class[valid] == s["target"][valid]).float().mean()
        assert agree > 0.9, f"epoch {epoch}: only {agree:.2f} of pixels agree"
        # Padding only ever adds ignore labels and zero depth together.
        assert torch.all(s["depth"][0][s["target"] == 255] >= 0)


def test_augmentation_is_fixed_by_seed_epoch_and_index(seg_root: Path) -> None:
    cfg = TransformConfig(scale=(0.5, 2.0), crop=16, hflip=True)
    a = SegmentationDataset(seg_root, "train", ["rgb", "depth"], num_classes=5, transform=cfg, seed=1)
    b = SegmentationDataset(seg_root, "train", ["rgb", "depth"], num_classes=5, transform=cfg, seed=1)
    assert torch.equal(a[0]["rgb"], b[0]["rgb"])
    b.set_epoch(1)
    assert not torch.equal(a[0]["rgb"], b[0]["rgb"])


def test_translation_applies_cen_preprocessing(translation_root: Path) -> None:
    ds = TranslationDataset(translation_root, "train", ["reshading", "depth_zbuffer", "edge_texture"], "rgb")
    s = ds[0]
    assert s["reshading"].shape == (1, 16, 16) and s["target"].shape == (3, 16, 16)
    for key in s:
        assert s[key].min() >= -1 and s[key].max() <= 1
    # depth 2 m = 1024 in 1/512 m -> log(1 + 1024) * 255 / 11.1 quantised to uint8
    expected = np.floor(np.log1p(1024.0) * 255 / 11.1) / 255 * 2 - 1
    assert s["depth_zbuffer"][0, 5, 5].item() == pytest.approx(expected, abs=1e-6)
    assert s["edge_texture"][0, 5, 5].item() == pytest.approx(np.floor(127.5) / 255 * 2 - 1, abs=1e-6)


def test_translation_clips_values_above_cen_maxima() -> None:
    edges = np.array([[0, 11355, 20000]], dtype=np.uint16)
    out = preprocess_domain("edge_texture", edges, Path("x.png"))
    assert out.tolist() == [[0.0, 1.0, 1.0]]


def test_translation_template_without_placeholder_is_rejected(translation_root: Path) -> None:
    (translation_root / "train.txt").write_text("rgb/point_0_view_0_domain_rgb.png\n")
    with pytest.raises(DataFormatError, match=r"train.txt:1: template .* has no \{domain\}"):
        TranslationDataset(translation_root, "train", ["reshading"], "rgb")


@pytest.mark.parametrize("task", ["segmentation", "translation"])
def test_cached_decoding_gives_the_same_samples_and_reads_each_file_once(
    task: str, seg_root: Path, translation_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asymfusion.datasets.segmentation as seg_module
    import asymfusion.datasets.translation as trans_module

    module = seg_module if task == "segmentation" else trans_module

    def make(cache: bool):
        if task == "segmentation":
            cfg = TransformConfig(scale=(0.5, 2.0), crop=16, hflip=True)
            return SegmentationDataset(seg_root, "train", ["rgb", "depth"], num_classes=5, transform=cfg, seed=3,
                                       cache_decoded=cache)
        cfg = TransformConfig(resize=20, crop=12, hflip=True)
        return TranslationDataset(translation_root, "train", ["reshading", "depth_zbuffer"], "rgb", transform=cfg,
                                  seed=3, cache_decoded=cache)

    plain, cached = make(False), make(True)
    reads: list[Path] = []
    original = module.read_png
    monkeypatch.setattr(module, "read_png", lambda path: reads.append(path) or original(path))
    for epoch in range(3):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for index in range(len(plain)):
            a, b = plain[index], cached[index]
            b_again = cached[index]  # a transform that wrote into the cached arrays would show here
            for key in a:
                assert torch.equal(a[key], b[key]) and torch.equal(b[key], b_again[key]), (epoch, index, key)
    files_per_sample = 3
    assert len(reads) == len(plain) * files_per_sample * (3 + 1)  # plain: every epoch; cached: once
