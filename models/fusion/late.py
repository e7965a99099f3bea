"""late: one full network (encoder and decoder) per modality; fusion only by the alpha ensemble of predictions."""

from __future__ import annotations

from torch import Tensor, nn

from ..encoder import tile_channels
from ..networks import AlphaEnsemble, EncoderDecoder, FusionModel, make_decoder, make_encoder
from .base import FusionMethod
from .registry import register_fusion


class LateFusionModel(FusionModel):
    def __init__(self, nets: dict[str, EncoderDecoder], stem_channels: int) -> None:
        super().__init__()
        self.modalities = list(nets)
        self.nets = nn.ModuleDict(nets)
        self.stem_channels = stem_channels
        self.ensemble = AlphaEnsemble(len(nets))

    def encoder_modules(self) -> list[nn.Module]:
        return [net.encoder for net in self.nets.values()]

    def forward(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        outputs = {m: net(tile_channels(inputs[m], self.stem_channels)) for m, net in self.nets.items()}
        outputs["ensemble"] = self.ensemble(list(outputs.values()))
        return outputs

    def modality_parameters(self) -> dict[str, list[nn.Parameter]]:
        return {m: list(net.parameters()) for m, net in self.nets.items()}


@register_fusion("late")
class LateFusion(FusionMethod):
    def build(self) -> FusionModel:
        config = self.config
        stem = config.resolved_stem_channels()
        nets = {}
        for modality in config.modalities:
            encoder = make_encoder(config, stem, num_modalities=1, require_norm=False)
            nets[modality] = EncoderDecoder(encoder, make_decoder(config, encoder.channels, num_modalities=1))
        return LateFusionModel(nets, stem)
