"""Entry points: `build_model` (any registered method, either task) and `build_discriminator` (translation)."""

from __future__ import annotations

from torch import nn

from .config import ModelConfig
from .fusion.registry import get_fusion
from .networks import FusionModel
from .translation.patchgan import PatchDiscriminator


def build_model(config: ModelConfig) -> FusionModel:
    """The method's model: {modality: [B, C_m, H, W]} -> {branch: output, ..., "ensemble": output}.

    Segmentation outputs are logits at the input H, W; translation outputs are images in [-1, 1].
    """
    return get_fusion(config.method)(config).build()


def build_discriminator(config: ModelConfig) -> nn.Module:
    """Conditional PatchGAN shared by all modalities: judges an image given one modality's input (see patchgan.py)."""
    if config.task != "translation":
        raise ValueError("build_discriminator is for the translation task")
    d = config.discriminator
    return PatchDiscriminator(config.modalities, config.resolved_stem_channels(), config.out_channels,
                              d.base_channels, d.downsampling)
