"""`build_dataset`: the loader of a dataset's task over one split of its prepared folder."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from asymfusion.datasets.config import DataConfig, DatasetConfig, TransformConfig
from asymfusion.datasets.segmentation import SegmentationDataset
from asymfusion.datasets.translation import TranslationDataset


def build_dataset(
    dataset: DatasetConfig,
    root: str | Path,
    data: DataConfig,
    split: str,
    *,
    augment: bool,
    seed: int = 0,
) -> Dataset:
    """The loader for `dataset`'s task over `root/<split>.txt`; `augment` picks train or val transforms."""
    transform: TransformConfig = data.train_transforms if augment else data.val_transforms
    if dataset.task == "segmentation":
        assert dataset.num_classes is not None
        return SegmentationDataset(root, split, data.modalities, dataset.num_classes, transform, seed=seed,
                                   depth_scale=dataset.depth_scale, cache_decoded=data.cache_decoded)
    assert data.target is not None
    return TranslationDataset(root, split, data.modalities, data.target, transform, seed=seed,
                              cache_decoded=data.cache_decoded)
