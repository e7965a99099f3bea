"""pix2pix U-Net generator as in CEN's image2image_translation code, split into encoder and decoder halves.

Encoder level i: [leaky-relu 0.2] -> conv 4x4 stride 2 -> InstanceNorm (none on the first and the innermost level).
Decoder level j: relu -> transposed conv 4x4 stride 2 -> InstanceNorm -> [dropout], then concatenation with the
mirrored encoder feature; the last level has no norm and ends in tanh. All convs are shared by the modalities; every
InstanceNorm is per modality (`ModalityInstanceNorm`), matching CEN's InstanceNorm2dParallel.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..norm import ModalityInstanceNorm, NormChoice


def level_channels(base_channels: int, depth: int) -> list[int]:
    """Channels of encoder levels 1..depth: base * 1, 2, 4, 8, 8, ... (pix2pix)."""
    return [base_channels * min(2 ** i, 8) for i in range(depth)]


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Normal(0, 0.02) conv weights, the CEN/pix2pix initialisation."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)


class EncoderLevel(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_modalities: int, activation: bool, norm: bool,
                 norm_spec: NormChoice | None, track_running_stats: bool) -> None:
        super().__init__()
        self.act = nn.LeakyReLU(0.2) if activation else nn.Identity()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)
        self.norm = (ModalityInstanceNorm(out_channels, num_modalities, norm_spec, track_running_stats)
                     if norm else nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.conv(self.act(x)))


class UNetEncoder(nn.Module):
    """Down path: returns the output of every level (finest first); fusion may act after chosen levels."""

    def __init__(self, in_channels: int, num_modalities: int, base_channels: int = 64, depth: int = 8,
                 norm_spec: NormChoice | None = None, track_running_stats: bool = True) -> None:
        super().__init__()
        self.channels = level_channels(base_channels, depth)
        self.num_modalities = num_modalities
        widths = [in_channels, *self.channels]
        self.levels = nn.ModuleList(
            EncoderLevel(widths[i], widths[i + 1], num_modalities, activation=i > 0, norm=0 < i < depth - 1,
                         norm_spec=norm_spec, track_running_stats=track_running_stats) for i in range(depth))
        self.fusion = nn.ModuleDict()
        init_weights(self)

    @property
    def normalised_levels(self) -> list[int]:
        """Levels (1-based) whose output is instance-normalised: where CEN exchanges and AsymFusion fuses by default."""
        return list(range(2, len(self.levels)))

    def fuse_stage_output(self, level: int, fusion: nn.Module) -> None:
        """Apply `fusion` (a module on stacks) to level `level`'s output (1-based), before the next level and skip."""
        if not 1 <= level <= len(self.levels):
            raise ValueError(f"U-Net level {level} out of range 1..{len(self.levels)}")
        self.fusion[str(level)] = fusion

    def forward(self, x: Tensor) -> list[Tensor]:
        factor = 2 ** len(self.levels)
        if x.shape[-2] % factor or x.shape[-1] % factor:
            raise ValueError(f"U-Net of depth {len(self.levels)} needs H, W divisible by {factor}; got "
                             f"{tuple(x.shape[-2:])}")
        features = []
        for i, level in enumerate(self.levels, start=1):
            x = level(x)
            if str(i) in self.fusion:
                x = self.fusion[str(i)](x)
            features.append(x)
        return features


class DecoderLevel(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_modalities: int, norm: bool, dropout: float,
                 norm_spec: NormChoice | None, track_running_stats: bool) -> None:
        super().__init__()
        self.act = nn.ReLU()
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)
        self.norm = (ModalityInstanceNorm(out_channels, num_modalities, norm_spec, track_running_stats)
                     if norm else nn.Identity())
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.norm(self.deconv(self.act(x))))


class UNetDecoder(nn.Module):
    """Up path with skip connections: encoder features (finest first) -> image in [-1, 1]."""

    def __init__(self, encoder_channels: list[int], out_channels: int, num_modalities: int, dropout: float = 0.5,
                 dropout_levels: int = 3, norm_spec: NormChoice | None = None,
                 track_running_stats: bool = True) -> None:
        super().__init__()
        depth = len(encoder_channels)
        outs = [*reversed(encoder_channels[:-1]), out_channels]
        ins = [encoder_channels[-1]] + [2 * c for c in outs[:-1]]
        self.levels = nn.ModuleList(
            DecoderLevel(ins[j], outs[j], num_modalities, norm=j < depth - 1,
                         dropout=dropout if j < min(dropout_levels, depth - 1) else 0.0,
                         norm_spec=norm_spec, track_running_stats=track_running_stats) for j in range(depth))
        init_weights(self)

    def forward(self, features: list[Tensor]) -> Tensor:
        skips = list(reversed(features))
        x = skips[0]
        for level, skip in zip(self.levels, [*skips[1:], None]):
            x = level(x)
            if skip is not None:
                x = torch.cat([x, skip], dim=1)
        return torch.tanh(x)
