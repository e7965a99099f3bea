"""Shared fixtures: tiny datasets in the real on-disk layouts, written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asymfusion.datasets.formats import (
    encode_depth,
    seg_frame_paths,
    taskonomy_name,
    taskonomy_template,
    write_list,
    write_png,
    TASKONOMY_DEPTH_SCALE,
)

REPO = Path(__file__).resolve().parents[1]
REAL_SAMPLES = REPO.parent / "shared" / "real-samples"


def write_seg_layout(root: Path, n: int = 4, size: tuple[int, int] = (24, 32), num_classes: int = 5) -> Path:
    """A segmentation layout whose labels are a function of position (so alignment can be checked)."""
    rng = np.random.default_rng(0)
    h, w = size
    rows = []
    for i in range(n):
        rgb_path, mask_path, depth_path = seg_frame_paths(i)
        yy, xx = np.mgrid[0:h, 0:w]
        mask = ((xx * num_classes) // w).astype(np.uint8)
        mask[0, 0] = 255
        depth = 0.5 + xx.astype(np.float32) / w * 4 + i * 0.1  # metres, increases to the right
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        rgb[..., 0] = (xx * 255 // (w - 1)).astype(np.uint8)
        write_png(root / rgb_path, rgb)
        write_png(root / mask_path, mask)
        write_png(root / depth_path, encode_depth(depth))
        rows.append((rgb_path, mask_path, depth_path))
    write_list(root / "train.txt", rows[: n // 2 or 1])
    write_list(root / "val.txt", rows[n // 2 :] or rows)
    return root


def write_translation_layout(root: Path, n: int = 3, size: int = 16) -> Path:
    rng = np.random.default_rng(1)
    templates = []
    for p in range(n):
        write_png(root / taskonomy_name(p, 0, "rgb"), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        shade = rng.integers(0, 256, (size, size), dtype=np.uint8)
        write_png(root / taskonomy_name(p, 0, "reshading"), np.repeat(shade[..., None], 3, axis=2))
        depth = np.full((size, size), 2.0 * TASKONOMY_DEPTH_SCALE, dtype=np.uint16)
        depth[0, :] = 65535
        write_png(root / taskonomy_name(p, 0, "depth_zbuffer"), depth)
        write_png(root / taskonomy_name(p, 0, "edge_texture"), np.full((size, size), 11355 // 2, dtype=np.uint16))
        templates.append(taskonomy_template(p, 0))
    write_list(root / "train.txt", templates)
    write_list(root / "val.txt", templates[:1])
    return root


@pytest.fixture
def seg_root(tmp_path: Path) -> Path:
    return write_seg_layout(tmp_path / "seg")


@pytest.fixture
def translation_root(tmp_path: Path) -> Path:
    return write_translation_layout(tmp_path / "trans")


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding a tiny procedural render (both layouts), shared by the engine tests."""
    from asymfusion.datasets.synthetic import render_dataset

    data = tmp_path_factory.mktemp("data")
    render_dataset(data / "synthetic", size=32, n_train=8, n_val=5, views_per_scene=2, seed=0, progress=False)
    return data


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `heavy` (minutes each) first, the rest in their order: started last, one of them would keep a
    worker busy minutes after the other had run out of tests."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)
