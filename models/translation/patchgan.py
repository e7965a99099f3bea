"""Conditional PatchGAN discriminator of the CEN protocol (pix2pix 70x70-style, InstanceNorm).

It judges an image (a target or a generated output) *given one modality's input*: its input is
cat(input_m tiled to the stem width, image). As in CEN, one discriminator is shared by all modalities: branch m's
output is judged given input m; an image without a branch (a target, or the ensemble) is judged given every
modality's input in turn. It returns patch logits; CEN applies a sigmoid and BCELoss, so use BCEWithLogitsLoss.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..encoder import tile_channels
from .unet import init_weights


class PatchDiscriminator(nn.Module):
    """conv4x4/2 -> [lrelu, conv4x4/2, IN] x (downsampling-1) -> lrelu, conv4x4/1, IN -> lrelu, conv4x4/1 -> logits."""

    def __init__(self, modalities: list[str], condition_channels: int, image_channels: int, base_channels: int = 64,
                 downsampling: int = 3) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.condition_channels = condition_channels
        widths = [base_channels * min(2 ** i, 8) for i in range(downsampling + 1)]
        layers: list[nn.Module] = [nn.Conv2d(condition_channels + image_channels, widths[0], 4, 2, 1)]
        for i in range(1, downsampling + 1):
            stride = 2 if i < downsampling else 1
            layers += [nn.LeakyReLU(0.2), nn.Conv2d(widths[i - 1], widths[i], 4, stride, 1),
                       nn.InstanceNorm2d(widths[i], affine=True, track_running_stats=True)]
        layers += [nn.LeakyReLU(0.2), nn.Conv2d(widths[-1], 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, inputs: dict[str, Tensor], image: Tensor, modality: str | None = None) -> Tensor:
        """Patch logits for `image` given `inputs[modality]`: [B, 1, h, w]; given every modality when modality is
        None: [M*B, 1, h, w], modality-major."""
        names = [modality] if modality is not None else self.modalities
        conditions = torch.cat([tile_channels(inputs[m], self.condition_channels) for m in names], dim=0)
        images = image.repeat(len(names), 1, 1, 1)
        return self.net(torch.cat([conditions, images], dim=1))
