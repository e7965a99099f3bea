"""sagate: Separation-and-Aggregation Gate (Chen et al., "Bi-directional Cross-Modality Feature Propagation with
Separation-and-Aggregation Gate for RGB-D Semantic Segmentation", ECCV 2020; code:
charlesCXK/RGBD_Semantic_Segmentation_PyTorch, `SA-Gate.nyu/net_util.py`, `dual_resnet.py`).

Two encoders of the same backbone run stage by stage. After every stage, an SA-Gate:

- *separation* (feature recalibration, the code's FSP): each stream adds the other's feature reweighted per channel,
  rec_rgb = rgb + sigma(MLP(GAP([depth, rgb]))) * depth, and symmetrically for depth (MLP: C -> C/16 -> C);
- *aggregation*: two 1x1 convs on [rec_rgb, rec_depth] give one spatial gate per modality, softmaxed over the two
  modalities per pixel; merge = a_rgb * rgb + a_depth * depth (the unrecalibrated features, as the code);
- *propagation*: both streams continue with relu((own + merge) / 2); the decoder reads the merged feature of each
  stage. One decoder, one output ("ensemble").

Deviations: the suite's decoder (RefineNet or DeepLabv3+) replaces SA-Gate's DeepLabv3+ head, so every method
shares one decoder; BN momentum is the backbone's. Two modalities, segmentation, ResNet-family backbones (their
stages must run one at a time).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from ..networks import FusionModel, make_decoder
from .base import FusionMethod, FusionOptions
from .interleaved import InterleavedModel, make_stage_encoders
from .registry import register_fusion


class SAGateOptions(FusionOptions):
    reduction: int = Field(16, ge=1, description="Channel reduction of the recalibration MLP (SA-Gate: 16).")


class Recalibration(nn.Module):
    """main + sigma(MLP(GAP([guide, main]))) * guide: the guide's channels the main stream takes (the code's FSP)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(2 * channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels),
                                 nn.Sigmoid())

    def weights(self, guide: Tensor, main: Tensor) -> Tensor:
        pooled = torch.cat([guide, main], dim=1).mean(dim=(2, 3))
        return self.mlp(pooled)[:, :, None, None]

    def forward(self, guide: Tensor, main: Tensor) -> Tensor:
        return main + self.weights(guide, main) * guide


class SAGate(nn.Module):
    """[rgb, depth] -> ([relu((rgb + merge) / 2), relu((depth + merge) / 2)], merge)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.recalibrate = nn.ModuleList([Recalibration(channels, reduction), Recalibration(channels, reduction)])
        self.gates = nn.ModuleList([nn.Conv2d(2 * channels, 1, 1), nn.Conv2d(2 * channels, 1, 1)])

    def attention(self, rgb: Tensor, depth: Tensor) -> Tensor:
        """[B, 2, H, W]: per-pixel weights of rgb and depth in the merge (a softmax over the modalities)."""
        rec = torch.cat([self.recalibrate[0](depth, rgb), self.recalibrate[1](rgb, depth)], dim=1)
        return torch.cat([gate(rec) for gate in self.gates], dim=1).softmax(dim=1)

    def forward(self, streams: list[Tensor], previous: Tensor | None = None) -> tuple[list[Tensor], Tensor]:
        rgb, depth = streams
        a = self.attention(rgb, depth)
        merge = rgb * a[:, 0:1] + depth * a[:, 1:2]
        return [torch.relu((rgb + merge) / 2), torch.relu((depth + merge) / 2)], merge


@register_fusion("sagate")
class SeparationAggregationGate(FusionMethod):
    Options = SAGateOptions
    tasks = ("segmentation",)
    max_modalities = 2

    def build(self) -> FusionModel:
        config = self.config
        encoders = make_stage_encoders(config)
        channels = next(iter(encoders.values())).channels
        gates = [SAGate(c, self.options.reduction) for c in channels]
        return InterleavedModel(encoders, gates, make_decoder(config, channels, num_modalities=1),
                                config.resolved_stem_channels())
