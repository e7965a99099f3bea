"""early: one network on the channel-wise concatenation of all inputs (timm `in_chans` = sum of channels).

With pretrained weights timm adapts the stem to the wider input. No tiling: each modality keeps its own channels.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..networks import EncoderDecoder, FusionModel, make_decoder, make_encoder
from .base import FusionMethod
from .registry import register_fusion


class EarlyFusionModel(FusionModel):
    def __init__(self, net: EncoderDecoder, modalities: list[str]) -> None:
        super().__init__()
        self.modalities = modalities
        self.net = net

    def encoder_modules(self) -> list[nn.Module]:
        return [self.net.encoder]

    def forward(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"ensemble": self.net(torch.cat([inputs[m] for m in self.modalities], dim=1))}

    def modality_parameters(self) -> dict[str, list[nn.Parameter]]:
        return {m: [] for m in self.modalities}


@register_fusion("early")
class EarlyFusion(FusionMethod):
    def build(self) -> FusionModel:
        config = self.config
        encoder = make_encoder(config, sum(config.in_channels.values()), num_modalities=1, require_norm=False)
        net = EncoderDecoder(encoder, make_decoder(config, encoder.channels, num_modalities=1))
        return EarlyFusionModel(net, list(config.modalities))
