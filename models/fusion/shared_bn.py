"""shared_bn: one shared encoder whose BatchNorms are shared too; fusion only through the alpha ensemble.

Default norm `shared`: one ordinary BN per layer, statistics over the whole stack in training and evaluation, one
affine. `official_shared` reproduces the official ShareBatchNorm2dParallel (per-chunk batch statistics in training,
one blended running estimate in evaluation); `{statistics: modality, affine: shared}` isolates affine sharing.
Per-modality affines are msbn's territory and are refused here.
"""

from __future__ import annotations

from ..networks import FusionModel, StackedModel
from ..norm import NormSpec
from .base import FusionMethod
from .registry import register_fusion


@register_fusion("shared_bn")
class SharedBN(FusionMethod):
    default_norm = "shared"

    @classmethod
    def check_norm(cls, spec: NormSpec, task: str) -> None:
        if spec.affine != "shared":
            raise ValueError(f"shared_bn shares the BN affine parameters; norm {spec} gives each modality its own. "
                             "Use method msbn with that norm instead")

    def build(self) -> FusionModel:
        return StackedModel(self.config)
