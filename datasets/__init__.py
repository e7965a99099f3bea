"""Datasets: fetch, prepare, on-disk formats, loaders and the procedural renderer (`import asymfusion.datasets`).

The names below load on first use, so `asymfusion.datasets.config` (the schema) imports without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value
