"""DeepLabv3+ decoder (Chen et al., ECCV 2018): ASPP on the deepest feature, then a light decoder at stride 4.

ASPP runs on the deepest feature it is given (the encoder's stride-32 feature here): a 1x1 conv, one 3x3 atrous conv
per rate and an image-pooling branch, concatenated and projected by a 1x1 conv, then dropout. The decoder upsamples
that to the stride-4 feature, concatenates the stride-4 feature reduced to `low_level_channels` by a 1x1 conv, and
applies two 3x3 conv-BN-ReLU and a 1x1 classifier: logits at stride 4 (the model upsamples them to the input size).

Differences from the official (TensorFlow) Xception model, kept deliberately simple and documented:
- Output stride: the official model uses output stride 16 (the last Xception block dilated) with rates 6, 12, 18.
  Here ASPP sees whatever the encoder's deepest feature is: stride 32 with timm features_only. timm's xception65
  accepts `output_stride=16`, but its features then sit at strides 2, 4, 8, 16, 16 and the encoder (which needs
  strides 4, 8, 16, 32) rejects it. At stride 32 the rates that keep the official receptive field in pixels are
  halved (3, 6, 9), as the paper doubles them for output stride 8.
- Plain 3x3 convs instead of depthwise-separable ones in ASPP and the decoder (as torchvision / most PyTorch ports).
- Bilinear upsampling with align_corners=True, as the official `resize_bilinear` calls.

Norms: the decoder runs once on the modality stack [M*B, ...] of shared-encoder methods, so every BatchNorm is a
`ModalityBatchNorm` (one copy per modality, or one copy applied per chunk when shared): statistics never mix across
modalities, as in the encoder and the translation U-Net's decoder. Decoder statistics always train
(`freeze_bn_stats` is about the pretrained encoder).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..norm import ModalityBatchNorm, NormChoice


class ConvNormReLU(nn.Sequential):
    """conv (no bias) -> modality-specific BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_modalities: int,
                 norm: NormChoice | None, dilation: int = 1) -> None:
        padding = dilation * (kernel_size // 2)
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False),
            ModalityBatchNorm(out_channels, num_modalities, norm),
            nn.ReLU(inplace=True))


class ImagePooling(nn.Module):
    """Global average pool -> 1x1 conv (with bias) -> ReLU -> broadcast back to the feature's size.

    No BatchNorm here, unlike the official branch: on a pooled [B, C, 1, 1] map BatchNorm's training statistics come
    from B values per channel only (per modality chunk in a stack), so a batch of 1 per modality raises in train mode
    ("Expected more than 1 value per channel") and small batches give very noisy statistics. A bias instead keeps the
    branch defined for any batch size and purely per-sample, so no statistics can mix across modalities either.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        pooled = F.relu(self.conv(F.adaptive_avg_pool2d(x, 1)))
        return pooled.expand(-1, -1, *x.shape[-2:])  # bilinear upsampling of a 1x1 map is a broadcast


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, one 3x3 atrous conv per rate, image pooling; concat, 1x1, dropout."""

    def __init__(self, in_channels: int, channels: int, rates: Sequence[int], dropout: float, num_modalities: int,
                 norm: NormChoice | None) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [ConvNormReLU(in_channels, channels, 1, num_modalities, norm)]
            + [ConvNormReLU(in_channels, channels, 3, num_modalities, norm, dilation=r) for r in rates])
        self.pooling = ImagePooling(in_channels, channels)
        self.project = ConvNormReLU((len(rates) + 2) * channels, channels, 1, num_modalities, norm)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.cat([branch(x) for branch in self.branches] + [self.pooling(x)], dim=1)
        return self.dropout(self.project(out))


class DeepLabV3PlusDecoder(nn.Module):
    """Features at strides 4, 8, 16, 32 (the encoder's 4 levels) -> class logits at stride 4.

    Only the first (stride 4) and the last (deepest) features are used; the middle two are ignored, as in DeepLabv3+.
    `num_modalities` / `norm` size the modality-specific BatchNorms for decoders run on modality stacks.
    """

    def __init__(self, encoder_channels: list[int], num_classes: int, aspp_channels: int = 256,
                 atrous_rates: Sequence[int] = (6, 12, 18), low_level_channels: int = 48, dropout: float = 0.1, *,
                 num_modalities: int = 1, norm: NormChoice | None = None) -> None:
        super().__init__()
        low_in, deep_in = encoder_channels[0], encoder_channels[-1]
        self.aspp = ASPP(deep_in, aspp_channels, tuple(atrous_rates), dropout, num_modalities, norm)
        self.reduce = ConvNormReLU(low_in, low_level_channels, 1, num_modalities, norm)
        self.fuse = nn.Sequential(
            ConvNormReLU(aspp_channels + low_level_channels, aspp_channels, 3, num_modalities, norm),
            ConvNormReLU(aspp_channels, aspp_channels, 3, num_modalities, norm))
        self.classifier = nn.Conv2d(aspp_channels, num_classes, kernel_size=1, bias=True)

    def forward(self, features: list[Tensor]) -> Tensor:
        low, deep = features[0], features[-1]
        x = self.aspp(deep)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=True)
        x = self.fuse(torch.cat([x, self.reduce(low)], dim=1))
        return self.classifier(x)
