"""Entry points: `build_model` (any registered method, either task) and `build_discriminator` (translation)."""

from __future__ import annotations

from torch import nn

from .config import ModelConfig
from .fusion.registry import get_fusion
from .networks import FusionModel
from .tasks import model_task


def build_model(config: ModelConfig) -> FusionModel:
    """The method's model: {modality: [B, C_m, H, W]} -> {branch: output, ..., "ensemble": output}.

    Segmentation outputs are logits at the input H, W; translation outputs are images in [-1, 1].
    """
    return get_fusion(config.method)(config).build()


def build_discriminator(config: ModelConfig) -> nn.Module:
    """The task's discriminator (translation: a conditional PatchGAN shared by all modalities, see patchgan.py)."""
    return model_task(config.task).discriminator(config)
