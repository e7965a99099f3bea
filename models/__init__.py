"""asymfusion.models: encoders over timm, fusion methods (registry), decoders and heads.

`build_model(config)` returns a module mapping {modality: tensor} to {branch: output, ..., "ensemble": output};
modalities travel stacked modality-major ([M*B, C, H, W]) inside it (DESIGN.md §4).
"""

from .build import build_discriminator, build_model
from .config import ModelConfig
from .fusion.ops import channel_shuffle, pixel_shift
from .fusion.registry import list_fusions, register_fusion
from .norm import ModalityBatchNorm

__all__ = ["build_model", "build_discriminator", "register_fusion", "list_fusions", "ModelConfig",
           "channel_shuffle", "pixel_shift", "ModalityBatchNorm"]
