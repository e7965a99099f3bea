"""separate: one encoder per modality, their features merged at every stage, one shared decoder.

Merge by sum (default; parameter-free, the 160.60M paper count) or by concatenation + 1x1 conv per stage. The
encoders never see each other's features: fusion feeds only the decoder (for translation every U-Net skip level).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from ..encoder import tile_channels, upsample_to
from ..networks import FusionModel, make_decoder, make_encoder
from .base import FusionMethod, FusionOptions
from .registry import register_fusion


class SeparateOptions(FusionOptions):
    merge: Literal["sum", "concat"] = Field("sum", description="sum the modalities' features, or concatenate them "
                                            "and reduce with a 1x1 conv per stage.")


class SeparateEncodersModel(FusionModel):
    def __init__(self, encoders: dict[str, nn.Module], decoder: nn.Module, merge: str, stem_channels: int) -> None:
        super().__init__()
        self.modalities = list(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.decoder = decoder
        self.stem_channels = stem_channels
        channels = next(iter(encoders.values())).channels
        self.merge = merge
        self.reduce = nn.ModuleList(nn.Conv2d(len(encoders) * c, c, kernel_size=1) for c in channels) \
            if merge == "concat" else None

    def encoder_modules(self) -> list[nn.Module]:
        return list(self.encoders.values())

    def forward(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        x = {m: tile_channels(inputs[m], self.stem_channels) for m in self.modalities}
        per_modality = [self.encoders[m](x[m]) for m in self.modalities]
        if self.reduce is None:
            merged = [sum(levels) for levels in zip(*per_modality)]
        else:
            merged = [conv(torch.cat(levels, dim=1)) for conv, levels in zip(self.reduce, zip(*per_modality))]
        size = next(iter(x.values())).shape[-2:]
        return {"ensemble": upsample_to(self.decoder(merged), size)}

    def modality_parameters(self) -> dict[str, list[nn.Parameter]]:
        return {m: list(enc.parameters()) for m, enc in self.encoders.items()}


@register_fusion("separate")
class SeparateEncoders(FusionMethod):
    Options = SeparateOptions

    def build(self) -> FusionModel:
        config = self.config
        stem = config.resolved_stem_channels()
        encoders = {m: make_encoder(config, stem, num_modalities=1, require_norm=False) for m in config.modalities}
        channels = next(iter(encoders.values())).channels
        return SeparateEncodersModel(encoders, make_decoder(config, channels, num_modalities=1), self.options.merge,
                                     stem)
