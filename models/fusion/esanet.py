"""esanet: ESANet's RGB-D fusion (Seichter et al., "Efficient RGB-D Semantic Segmentation for Indoor Scene Analysis",
ICRA 2021; code: TUI-NICR/ESANet, `src/models/model.py`, `src/models/rgb_depth_fusion.py`).

Two encoders of the same backbone, one per modality. After every encoder stage, each modality's output is reweighted
by its own squeeze-and-excitation (global average pool -> 1x1 conv to C/16 -> ReLU -> 1x1 conv -> sigmoid, as
ESANet's `SqueezeAndExcitation`), and the sum is what the RGB stream's next stage and the decoder see; the depth
stream goes on with its own, unfused features. One decoder on the fused features, one output ("ensemble").

Deviations: ESANet also fuses after the stem (stride 2, before the max pool); here the four stages at strides 4-32
fuse, where every backbone of the suite exposes features. ESANet's decoder (non-bottleneck-1D modules, learned
upsampling) is replaced by the suite's decoder so that all methods share one (docs/models.md). With more than two
modalities, every other modality's SE output is added into the first modality's stream. Segmentation only.
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor, nn

from ..encoder import tile_channels, upsample_to
from ..networks import FusionModel, make_decoder, make_encoder
from .base import FusionMethod, FusionOptions
from .registry import register_fusion


class ESANetOptions(FusionOptions):
    reduction: int = Field(16, ge=1, description="Squeeze-and-excitation channel reduction (ESANet: 16).")


class SqueezeExcitation(nn.Module):
    """x * sigmoid(W2 relu(W1 avgpool(x))): channel reweighting (Hu et al., 2018; ESANet's fusion gate)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


class SEFusion(nn.Module):
    """Stage-output fusion of the primary stream: SE(primary) + sum of SE(other) over the other modalities, whose
    features of this stage the model hands over (`received`) before the primary encoder runs."""

    def __init__(self, channels: int, num_modalities: int, reduction: int) -> None:
        super().__init__()
        self.se = nn.ModuleList(SqueezeExcitation(channels, reduction) for _ in range(num_modalities))
        self.received: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        if len(self.received) != len(self.se) - 1:
            raise RuntimeError("SEFusion ran without the other modalities' features of its stage")
        return self.se[0](x) + sum(se(f) for se, f in zip(self.se[1:], self.received))


class ESANetModel(FusionModel):
    def __init__(self, encoders: dict[str, nn.Module], decoder: nn.Module, fusions: list[SEFusion],
                 stem_channels: int) -> None:
        super().__init__()
        self.modalities = list(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.decoder = decoder
        self.fusions = fusions  # registered inside the primary encoder (its stage outputs)
        self.stem_channels = stem_channels

    def encoder_modules(self) -> list[nn.Module]:
        return list(self.encoders.values())

    def forward(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        x = {m: tile_channels(inputs[m], self.stem_channels) for m in self.modalities}
        primary, *others = self.modalities
        other_levels = [self.encoders[m](x[m]) for m in others]  # the other streams never receive
        for stage, fusion in enumerate(self.fusions):
            fusion.received = [levels[stage] for levels in other_levels]
        try:
            fused = self.encoders[primary](x[primary])  # stage outputs fused in place, as the next stage sees them
        finally:
            for fusion in self.fusions:
                fusion.received = []
        return {"ensemble": upsample_to(self.decoder(fused), x[primary].shape[-2:])}

    def modality_parameters(self) -> dict[str, list[nn.Parameter]]:
        return {m: list(enc.parameters()) for m, enc in self.encoders.items()}


@register_fusion("esanet")
class ESANetFusion(FusionMethod):
    Options = ESANetOptions
    tasks = ("segmentation",)

    def build(self) -> FusionModel:
        config = self.config
        if len(config.modalities) < 2:
            raise ValueError("esanet fuses a second modality into the first: give it at least two")
        stem = config.resolved_stem_channels()
        encoders = {m: make_encoder(config, stem, num_modalities=1, require_norm=False) for m in config.modalities}
        primary = encoders[config.modalities[0]]
        fusions = []
        for stage, channels in enumerate(primary.channels, start=1):
            fusion = SEFusion(channels, len(encoders), self.options.reduction)
            primary.fuse_stage_output(stage, fusion)
            fusions.append(fusion)
        return ESANetModel(encoders, make_decoder(config, primary.channels, num_modalities=1), fusions, stem)
