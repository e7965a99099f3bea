"""shared_bn: one shared encoder whose BatchNorms are shared too; fusion only through the alpha ensemble.

The shared norm still normalises each modality's chunk separately (as the official ShareBatchNorm2dParallel);
only its affine parameters and running statistics are shared. `norm` in the config is ignored: always shared.
"""

from __future__ import annotations

from ..networks import FusionModel, StackedModel
from .base import FusionMethod
from .registry import register_fusion


@register_fusion("shared_bn")
class SharedBN(FusionMethod):
    def build(self) -> FusionModel:
        return StackedModel(self.config, shared_norm=True)
