"""acnet: attention complementary network (Hu et al., "ACNet: Attention Based Network to Exploit Complementary
Features for RGBD Semantic Segmentation", ICIP 2019; code: anheidelonghu/ACNet, `ACNet_models_V1.py`).

Three branches of the same backbone: one encoder per modality and a *fused* branch made of a third copy of the
backbone's stages (no stem of its own). An attention complementary module (ACM: global average pool -> 1x1 conv ->
sigmoid, a channel weight per modality) reweights each modality's feature, and the fused branch adds them up:
after the stem m0 = sum_m ACM_m(x_m^0); after stage s, m_s = stage_s^fused(m_{s-1}) + sum_m ACM_m(x_m^s) (the first
stage of the fused branch starts with the backbone's max pool, as ACNet's `maxpool_m`). The modality branches never
see the fusion. The decoder reads m_1..m_4. One decoder, one output ("ensemble").

Follows the code: ACM with a biased 1x1 conv and no reduction, the fused branch initialised like the others (with
`pretrained`, from the same ImageNet weights), the stem-level fusion before the pool. Deviations: the suite's decoder
replaces ACNet's transposed-convolution decoder and its four deep-supervision heads, and does not read the stride-2
m0 (every method here decodes stages 1-4); any number of modalities (one ACM each; ACNet: RGB and depth).
Segmentation, ResNet-family backbones (stem, pool and stages must be separate modules).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..encoder import TimmEncoder
from ..networks import FusionModel, make_decoder, make_encoder
from .base import FusionMethod
from .interleaved import InterleavedModel, make_stage_encoders
from .registry import register_fusion


class AttentionComplementary(nn.Module):
    """x * sigmoid(conv1x1(avgpool(x))): the channels of one modality the fused branch takes (ACNet's ACM)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


class ComplementaryFusion(nn.Module):
    """m = fused_branch(previous) + sum_m ACM_m(x_m); the modality streams go on unchanged."""

    def __init__(self, channels: int, num_modalities: int, fused_branch: list[nn.Module] | None) -> None:
        super().__init__()
        self.attention = nn.ModuleList(AttentionComplementary(channels) for _ in range(num_modalities))
        self.fused_branch = nn.Sequential(*fused_branch) if fused_branch is not None else None

    def forward(self, streams: list[Tensor], previous: Tensor | None) -> tuple[list[Tensor], Tensor]:
        merge = sum(acm(x) for acm, x in zip(self.attention, streams))
        if self.fused_branch is not None:
            if previous is None:
                raise RuntimeError("the fused branch ran without the previous fusion point's feature")
            merge = merge + self.fused_branch(previous)
        return streams, merge


def split_stem(segments: list[list[nn.Module]]) -> list[list[nn.Module]]:
    """Cut the first stage's segment into the stem (up to its pooling) and the rest: [stem, pool + stage 1, ...]."""
    first = segments[0]
    cut = next((i for i, m in enumerate(first[:-1]) if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))), len(first) - 1)
    if cut == 0:
        raise ValueError("acnet needs a backbone with a stem before its first stage (a ResNet)")
    return [first[:cut], first[cut:], *segments[1:]]


def stem_channels_out(stem: list[nn.Module]) -> int:
    """Channels the stem produces: those of its last norm or convolution."""
    for module in reversed([m for s in stem for m in s.modules()]):
        if isinstance(module, nn.modules.batchnorm._NormBase):
            return module.num_features
        if isinstance(module, nn.Conv2d):
            return module.out_channels
    raise ValueError("acnet could not find the stem's output channels (no norm or conv in the stem)")


class ACNetModel(InterleavedModel):
    def segments(self, encoder: TimmEncoder) -> list[list[nn.Module]]:
        return split_stem(encoder.stage_segments())


@register_fusion("acnet")
class AttentionComplementaryNetwork(FusionMethod):
    tasks = ("segmentation",)

    def build(self) -> FusionModel:
        config = self.config
        encoders = make_stage_encoders(config)
        first = next(iter(encoders.values()))
        # the fused branch: a third copy of the backbone, of which only the pool and the stages are kept
        third = make_encoder(config, config.resolved_stem_channels(), num_modalities=1, require_norm=False)
        fused_copy = split_stem(third.stage_segments())[1:]
        stem = split_stem(first.stage_segments())[0]
        channels = [stem_channels_out(stem), *first.channels]
        fusions = [ComplementaryFusion(channels[0], len(encoders), None)]
        fusions += [ComplementaryFusion(c, len(encoders), branch) for c, branch in zip(channels[1:], fused_copy)]
        return ACNetModel(encoders, fusions, make_decoder(config, first.channels, num_modalities=1),
                          config.resolved_stem_channels())
