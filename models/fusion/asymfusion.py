"""asymfusion: shared encoder, modality-specific BN, channel shuffle + pixel shift (docs/design.md §5, official code).

Placement: inside the last residual block of each ResNet-family stage (ResNet-101: layer1[2], layer2[3], layer3[22],
layer4[2]). A stage whose only block is its first (timm `test_resnet`) and every non-ResNet timm family get the two
ops at the stage output instead; the translation U-Net gets them after its instance-normalised encoder levels.
Both ops are parameter-free, so the model has exactly msbn's parameters.
"""

from __future__ import annotations

from pydantic import Field
from timm.models.resnet import Bottleneck
from torch import Tensor, nn

from ..blocks import ResidualBlock
from ..encoder import TimmEncoder
from ..networks import FusionModel, StackedModel, default_fusion_stages
from .base import FusionMethod, FusionOptions
from .ops import ShuffleShift
from .registry import register_fusion


class AsymFusionOptions(FusionOptions):
    stages: list[int] | None = Field(None, description="Stages that fuse: segmentation 1-4 (features at strides "
                                     "4-32, ResNet layer1-4); translation U-Net encoder levels. Default: all four "
                                     "stages / the instance-normalised U-Net levels.")
    shuffle: bool = Field(True, description="Channel shuffle on (ablation: off).")
    shift: bool = Field(True, description="Pixel shift on (ablation: off).")
    direction: str = Field("bidirectional", description="'bidirectional', or the name of the only modality that "
                           "receives (unidirectional ablation).")
    exchanged_fraction: float | None = Field(None, ge=0.0, le=1.0, description="Share of channels a shuffle "
                                             "exchanges; default the official C - 4*(C//5) (16 of 64).")
    symmetric: bool = Field(False, description="Ablation of the asymmetry: exchanged channels and shifted features "
                            "are averaged over all modalities, so every modality receives the same.")


class FusedBottleneck(ResidualBlock):
    """Bottleneck with shuffle+shift after conv1 and after conv2 (steps 1-6 of docs/design.md §5)."""

    def __init__(self, block: nn.Module, fusion: ShuffleShift) -> None:
        super().__init__(block)
        self.fusion = fusion

    def forward(self, x: Tensor) -> Tensor:
        a = self.act1(self.bn1(self.conv1(x)))
        a, received = self.fusion.split(a)  # received: the other modality's a (unshifted); a: shuffle #1
        b = self.aa(self.act2(self.drop_block(self.bn2(self.conv2(a)))))
        b = self.fusion.merge(b, received)  # + the other modality's shifted features, then shuffle #2
        return self.act3(self.residual(self.bn3(self.conv3(b)), x))


class FusedBasicBlock(ResidualBlock):
    """BasicBlock: the same without conv3/bn3, so shuffle #2 comes right before the residual add."""

    def __init__(self, block: nn.Module, fusion: ShuffleShift) -> None:
        super().__init__(block)
        self.fusion = fusion

    def forward(self, x: Tensor) -> Tensor:
        a = self.aa(self.act1(self.drop_block(self.bn1(self.conv1(x)))))
        a, received = self.fusion.split(a)
        b = self.fusion.merge(self.bn2(self.conv2(a)), received)
        return self.act2(self.residual(b, x))


@register_fusion("asymfusion")
class AsymFusion(FusionMethod):
    Options = AsymFusionOptions

    def build(self) -> FusionModel:
        model = StackedModel(self.config)
        if model.num_modalities < 2:
            return model  # nothing to exchange with (the official code also skips)
        encoder = model.encoder
        stages = default_fusion_stages(encoder) if self.options.stages is None else sorted(set(self.options.stages))
        valid = range(1, len(encoder.channels) + 1)
        if any(s not in valid for s in stages):
            raise ValueError(f"asymfusion: stages {stages} outside {list(valid)}")
        for stage in stages:
            site = encoder.last_residual_block(stage) if isinstance(encoder, TimmEncoder) else None
            if site is None:  # non-ResNet family, single-block stage, or U-Net level: fuse the stage output
                encoder.fuse_stage_output(stage, self.fusion_point(encoder.channels[stage - 1]))
            else:
                path, block = site
                fused = FusedBottleneck if isinstance(block, Bottleneck) else FusedBasicBlock
                encoder.replace(path, fused(block, self.fusion_point(block.conv1.out_channels)))
        return model

    def fusion_point(self, channels: int) -> ShuffleShift:
        o, modalities = self.options, self.config.modalities
        if o.direction == "bidirectional":
            receivers = None
        elif o.direction in modalities:
            receivers = [m == o.direction for m in modalities]
        else:
            raise ValueError(f"asymfusion: direction {o.direction!r} is neither 'bidirectional' nor a modality "
                             f"of {modalities}")
        return ShuffleShift(channels, len(modalities), shuffle=o.shuffle, shift=o.shift,
                            exchanged_fraction=o.exchanged_fraction, receivers=receivers, symmetric=o.symmetric)
