"""asymfusion.models: encoders over timm, fusion methods (registry), decoders and heads.

`build_model(config)` returns a module mapping {modality: tensor} to {branch: output, ..., "ensemble": output};
modalities travel stacked modality-major ([M*B, C, H, W]) inside it (docs/design.md §4). The names below load on
first use, so `asymfusion.models.config` and `asymfusion.models.registry` import without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .registry import lazy_attributes

_EXPORTS = {
    "build_model": ".build", "build_discriminator": ".build", "ModelConfig": ".config",
    "register_fusion": ".fusion.registry", "list_fusions": ".fusion.registry",
    "channel_shuffle": ".fusion.ops", "pixel_shift": ".fusion.ops", "ModalityBatchNorm": ".norm",
}
__all__ = list(_EXPORTS)

if TYPE_CHECKING:
    from .build import build_discriminator, build_model
    from .config import ModelConfig
    from .fusion.ops import channel_shuffle, pixel_shift
    from .fusion.registry import list_fusions, register_fusion
    from .norm import ModalityBatchNorm


__getattr__ = lazy_attributes(__name__, _EXPORTS)
