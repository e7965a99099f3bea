"""msbn: one shared encoder with modality-specific BN; fusion only through the alpha ensemble of the branches.

AsymFusion without its two ops: the implicit-fusion baseline (docs/design.md §6). `norm` picks the statistics and
affines (models/norm.py); the default `modality` is MSBN itself.
"""

from __future__ import annotations

from ..networks import FusionModel, StackedModel
from .base import FusionMethod
from .registry import register_fusion


@register_fusion("msbn")
class ModalitySpecificBN(FusionMethod):
    def build(self) -> FusionModel:
        return StackedModel(self.config)
