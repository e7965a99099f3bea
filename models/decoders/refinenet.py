"""RefineNet decoder exactly as in the official AsymFusion / CEN segmentation code (light-weight-refinenet lineage).

Four refinement paths from the deepest feature up: 3x3 "dimred" conv, residual conv units (RCU), chained residual
pooling (CRP), another RCU, 3x3 conv out; bilinear upsampling (align_corners=True) between paths. The deepest path is
2*width wide (official 512), the rest width (256). Dropout on the two deepest encoder features and before the 3x3
classifier. All convs are shared by the modalities: the decoder runs once on the whole stack.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def conv3x3(in_channels: int, out_channels: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=bias)


class ResidualConvUnit(nn.Module):
    """`blocks` x (relu, conv3x3 with bias, relu, conv3x3) + residual (official RCUBlock with 2 stages).

    The official block applies an in-place ReLU to its input, which also rewrites the tensor kept as residual, so the
    residual is relu(x); reproduced here explicitly.
    """

    def __init__(self, channels: int, blocks: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.ModuleList([conv3x3(channels, channels, bias=True), conv3x3(channels, channels)]) for _ in range(blocks))

    def forward(self, x: Tensor) -> Tensor:
        for first, second in self.blocks:
            x = F.relu(x)
            x = x + second(F.relu(first(x)))
        return x


class ChainedResidualPooling(nn.Module):
    """`stages` x (5x5 max-pool stride 1, conv3x3), each stage's output added to the input (official CRPBlock)."""

    def __init__(self, channels: int, stages: int = 4) -> None:
        super().__init__()
        self.convs = nn.ModuleList(conv3x3(channels, channels) for _ in range(stages))
        self.pool = nn.MaxPool2d(kernel_size=5, stride=1, padding=2)

    def forward(self, x: Tensor) -> Tensor:
        top = x
        for conv in self.convs:
            top = conv(self.pool(top))
            x = x + top
        return x


class RefinePath(nn.Module):
    """One refinement path: dimred, RCU x2, [+ upper path after a 3x3 conv], relu, CRP, RCU x3, [3x3 conv out]."""

    def __init__(self, in_channels: int, width: int, out_channels: int | None, joins_upper: bool) -> None:
        super().__init__()
        self.dimred = conv3x3(in_channels, width)
        self.adapt = ResidualConvUnit(width, blocks=2)
        self.joint = conv3x3(width, width) if joins_upper else None
        self.pool = ChainedResidualPooling(width, stages=4)
        self.flow = ResidualConvUnit(width, blocks=3)
        self.out = conv3x3(width, out_channels) if out_channels else None

    def forward(self, feature: Tensor, upper: Tensor | None = None) -> Tensor:
        x = self.adapt(self.dimred(feature))
        if self.joint is not None:
            x = self.joint(x) + upper
        x = self.flow(self.pool(F.relu(x)))
        return self.out(x) if self.out is not None else x


class RefineNetDecoder(nn.Module):
    """Features at strides 4, 8, 16, 32 -> class logits at stride 4."""

    def __init__(self, encoder_channels: list[int], num_classes: int, width: int = 256, dropout: float = 0.5) -> None:
        super().__init__()
        c1, c2, c3, c4 = encoder_channels
        self.dropout = nn.Dropout(p=dropout)
        self.path4 = RefinePath(c4, 2 * width, width, joins_upper=False)
        self.path3 = RefinePath(c3, width, width, joins_upper=True)
        self.path2 = RefinePath(c2, width, width, joins_upper=True)
        self.path1 = RefinePath(c1, width, None, joins_upper=True)
        self.classifier = conv3x3(width, num_classes, bias=True)

    def forward(self, features: list[Tensor]) -> Tensor:
        l1, l2, l3, l4 = features
        l4, l3 = self.dropout(l4), self.dropout(l3)
        x = _up(self.path4(l4), l3)
        x = _up(self.path3(l3, x), l2)
        x = _up(self.path2(l2, x), l1)
        x = self.path1(l1, x)
        return self.classifier(self.dropout(x))


def _up(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=True)
