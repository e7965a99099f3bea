"""`build_dataset`: the loader of a dataset's task (datasets/tasks.py) over one split of its prepared folder."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from asymfusion.datasets.config import DataConfig, DatasetConfig, TransformConfig
from asymfusion.datasets.segmentation import SegmentationDataset
from asymfusion.datasets.translation import TranslationDataset

LOADERS = {loader.task: loader for loader in (SegmentationDataset, TranslationDataset)}


def build_dataset(
    dataset: DatasetConfig,
    root: str | Path,
    data: DataConfig,
    split: str,
    *,
    augment: bool,
    seed: int = 0,
    hha_root: str | Path | None = None,
) -> Dataset:
    """The loader for `dataset`'s task over `root/<split>.txt`; `augment` picks train or val transforms;
    `hha_root` is where `prepare hha` wrote the layout's HHA images (read when data.depth_encoding is hha)."""
    transform: TransformConfig = data.train_transforms if augment else data.val_transforms
    return LOADERS[dataset.task].from_config(dataset, root, data, split, transform, seed, hha_root=hha_root)


def input_encodings(dataset: DatasetConfig, modalities: list[str], depth_encoding: str = "raw") -> dict[str, str]:
    """Each input modality's encoding as the task's loader feeds it (e.g. depth in metres, or CEN's log scaling)."""
    return LOADERS[dataset.task].encodings(dataset, modalities, depth_encoding)
