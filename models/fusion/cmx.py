"""cmx: cross-modal feature rectification and fusion (Zhang et al., "CMX: Cross-Modal Fusion for RGB-X Semantic
Segmentation with Transformers", T-ITS 2023; code: huaaaliu/RGBX_Semantic_Segmentation, `models/net_utils.py` and the
CNN variant `models/encoders/dual_resnet.py`).

Two encoders of the same backbone run stage by stage. After every stage:

- *feature rectification* (FRM): channel weights from an MLP on [avg-pool, max-pool] of [rgb, depth] (4C -> 4C/r ->
  2C, sigmoid) and spatial weights from 1x1 convs on [rgb, depth] (2C -> C/r -> 2, sigmoid); each stream adds the
  other reweighted, rgb' = rgb + lambda_c * w_c[depth] * depth + lambda_s * w_s[depth] * depth (and symmetrically).
  The rectified features are what both encoders' next stages read;
- *feature fusion* (FFM): tokens of each stream are projected to 2C/r and split; one half goes through an efficient
  cross attention (each modality's queries read the other's context k^T v, softmaxed over the key channels), is
  concatenated to the other half, projected back to C and added residually under LayerNorm; the two results are
  concatenated and embedded to C (1x1 residual conv + [1x1, depthwise 3x3, ReLU, 1x1, BN], then BN). The decoder
  reads the fused feature of every stage. One decoder, one output ("ensemble").

Follows the code exactly: reduction 4 in both modules and lambda_c = lambda_s = 0.5 (the ResNet variant), the FFM's
weight initialisation (truncated normal 0.02 for linear layers, He normal on fan-out for convs; the FRM keeps
PyTorch's defaults, as its `_init_weights` is never applied), no query projection. Deviations: the number of heads is
the reduced width over `head_dim` (16 gives CMX's 4/8/16/32 heads on ResNet-50/101; tiny backbones get fewer heads
of the same or smaller size, never a remainder); the suite's decoder replaces CMX's (MLP / DeepLabv3+ heads) so every
method shares one. Two modalities, segmentation, ResNet-family backbones.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import Tensor, nn

from ..networks import FusionModel, make_decoder
from .base import FusionMethod, FusionOptions
from .interleaved import InterleavedModel, make_stage_encoders
from .registry import register_fusion


class CMXOptions(FusionOptions):
    reduction: int = Field(4, ge=1, description="Channel reduction in the FRM and FFM (CMX's ResNet variant: 4).")
    lambda_c: float = Field(0.5, ge=0, description="Weight of the channel-wise rectification (CMX: 0.5).")
    lambda_s: float = Field(0.5, ge=0, description="Weight of the spatial-wise rectification (CMX: 0.5).")
    head_dim: int = Field(16, ge=1, description="Channels per cross-attention head (CMX's ResNet heads: 16).")


class FeatureRectification(nn.Module):
    """Each stream + the other one reweighted per channel and per pixel (CMX's FRM)."""

    def __init__(self, channels: int, reduction: int, lambda_c: float, lambda_s: float) -> None:
        super().__init__()
        self.lambda_c, self.lambda_s = lambda_c, lambda_s
        hidden = max(1, 4 * channels // reduction)
        self.channel_mlp = nn.Sequential(nn.Linear(4 * channels, hidden), nn.ReLU(inplace=True),
                                         nn.Linear(hidden, 2 * channels), nn.Sigmoid())
        self.spatial_mlp = nn.Sequential(nn.Conv2d(2 * channels, max(1, channels // reduction), 1),
                                         nn.ReLU(inplace=True), nn.Conv2d(max(1, channels // reduction), 2, 1),
                                         nn.Sigmoid())

    def weights(self, rgb: Tensor, depth: Tensor) -> tuple[Tensor, Tensor]:
        """([2, B, C, 1, 1] channel weights, [2, B, 1, H, W] spatial weights); index 0 weighs rgb, 1 depth."""
        b, c = rgb.shape[:2]
        x = torch.cat([rgb, depth], dim=1)
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        channel = self.channel_mlp(pooled).reshape(b, 2, c, 1, 1).transpose(0, 1)
        spatial = self.spatial_mlp(x).unsqueeze(2).transpose(0, 1)
        return channel, spatial

    def forward(self, rgb: Tensor, depth: Tensor) -> tuple[Tensor, Tensor]:
        channel, spatial = self.weights(rgb, depth)
        rgb_out = rgb + self.lambda_c * channel[1] * depth + self.lambda_s * spatial[1] * depth
        depth_out = depth + self.lambda_c * channel[0] * rgb + self.lambda_s * spatial[0] * rgb
        return rgb_out, depth_out


class CrossAttention(nn.Module):
    """Efficient attention across two token sets: queries of one modality read the other's context k^T v."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.kv = nn.ModuleList([nn.Linear(dim, 2 * dim, bias=False), nn.Linear(dim, 2 * dim, bias=False)])

    def _split(self, x: Tensor) -> Tensor:  # [B, N, C] -> [B, heads, N, C / heads]
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def context(self, index: int, x: Tensor) -> Tensor:
        """[B, heads, d, d]: softmax over the key channels of k^T v of one modality."""
        k, v = (self._split(t) for t in self.kv[index](x).chunk(2, dim=-1))
        return (k.transpose(-2, -1) @ v * self.scale).softmax(dim=-2)

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        b, n, c = x1.shape
        out1 = self._split(x1) @ self.context(1, x2)
        out2 = self._split(x2) @ self.context(0, x1)
        return out1.transpose(1, 2).reshape(b, n, c), out2.transpose(1, 2).reshape(b, n, c)


class FeatureFusion(nn.Module):
    """Cross path on tokens, then a channel embedding of the concatenated streams back to C (CMX's FFM)."""

    def __init__(self, channels: int, reduction: int, head_dim: int) -> None:
        super().__init__()
        reduced = max(1, channels // reduction)
        heads = math.gcd(reduced, max(1, reduced // head_dim))
        self.project = nn.ModuleList([nn.Linear(channels, 2 * reduced), nn.Linear(channels, 2 * reduced)])
        self.cross = CrossAttention(reduced, heads)
        self.end = nn.ModuleList([nn.Linear(2 * reduced, channels), nn.Linear(2 * reduced, channels)])
        self.norms = nn.ModuleList([nn.LayerNorm(channels), nn.LayerNorm(channels)])
        self.residual = nn.Conv2d(2 * channels, channels, 1, bias=False)
        self.embed = nn.Sequential(
            nn.Conv2d(2 * channels, reduced, 1), nn.Conv2d(reduced, reduced, 3, padding=1, groups=reduced),
            nn.ReLU(inplace=True), nn.Conv2d(reduced, channels, 1), nn.BatchNorm2d(channels))
        self.norm = nn.BatchNorm2d(channels)
        self.apply(_init_weights)

    def forward(self, rgb: Tensor, depth: Tensor) -> Tensor:
        b, c, h, w = rgb.shape
        tokens = [x.flatten(2).transpose(1, 2) for x in (rgb, depth)]
        kept, attended = zip(*(torch.relu(p(t)).chunk(2, dim=-1) for p, t in zip(self.project, tokens)))
        crossed = self.cross(*attended)
        fused = [norm(t + end(torch.cat([y, v], dim=-1)))
                 for norm, end, t, y, v in zip(self.norms, self.end, tokens, kept, crossed)]
        merged = torch.cat(fused, dim=-1).transpose(1, 2).reshape(b, 2 * c, h, w)
        return self.norm(self.residual(merged) + self.embed(merged))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class CMXStage(nn.Module):
    """[rgb, depth] -> (rectified [rgb, depth] for the next stage, their fusion for the decoder)."""

    def __init__(self, channels: int, options: CMXOptions) -> None:
        super().__init__()
        self.rectify = FeatureRectification(channels, options.reduction, options.lambda_c, options.lambda_s)
        self.fuse = FeatureFusion(channels, options.reduction, options.head_dim)

    def forward(self, streams: list[Tensor], previous: Tensor | None = None) -> tuple[list[Tensor], Tensor]:
        rgb, depth = self.rectify(*streams)
        return [rgb, depth], self.fuse(rgb, depth)


@register_fusion("cmx")
class CrossModalFusion(FusionMethod):
    Options = CMXOptions
    tasks = ("segmentation",)
    max_modalities = 2

    def build(self) -> FusionModel:
        config = self.config
        encoders = make_stage_encoders(config)
        channels = next(iter(encoders.values())).channels
        stages = [CMXStage(c, self.options) for c in channels]
        return InterleavedModel(encoders, stages, make_decoder(config, channels, num_modalities=1),
                                config.resolved_stem_channels())
