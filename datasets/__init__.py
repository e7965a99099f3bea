"""Datasets: fetch, prepare, on-disk formats, loaders and the procedural renderer (`import asymfusion.datasets`).

The names below load on first use, so `asymfusion.datasets.config` (the schema) imports without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asymfusion.models.registry import lazy_attributes

_EXPORTS = {
    "DataConfig": ".config", "DatasetConfig": ".config", "DataFormatError": ".formats",
    "SegmentationDataset": ".segmentation", "TranslationDataset": ".translation", "build_dataset": ".build",
}
__all__ = list(_EXPORTS)

if TYPE_CHECKING:
    from .build import build_dataset
    from .config import DataConfig, DatasetConfig
    from .formats import DataFormatError
    from .segmentation import SegmentationDataset
    from .translation import TranslationDataset


__getattr__ = lazy_attributes(__name__, _EXPORTS)
