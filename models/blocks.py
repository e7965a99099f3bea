"""Rewriting a timm residual block's forward while keeping its weights: the public way to put fusion inside blocks.

Subclass `ResidualBlock`, write `forward` with the block's own layers (`self.conv1`, `self.bn1`, ...) and end it
with `self.residual(x, shortcut)`; swap it in with `encoder.replace(path, MyBlock(block, ...))`, where
`encoder.residual_blocks(stage)` lists the (path, block) pairs of a stage. The block's children keep their names,
so state_dict keys (and pretrained weights mapped onto them) do not change.
"""

from __future__ import annotations

from torch import Tensor, nn


class ResidualBlock(nn.Module):
    """A timm ResNet BasicBlock/Bottleneck's layers under their own names, for a subclass's own `forward`."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        for name, child in block._modules.items():
            self.add_module(name, child)
        for name in ("se", "drop_path", "downsample"):  # timm stores absent ones as plain None attributes
            if name not in self._modules:
                setattr(self, name, getattr(block, name, None))

    def residual(self, x: Tensor, shortcut: Tensor) -> Tensor:
        """The block's tail after its last norm: SE, drop-path, then + the (downsampled) shortcut."""
        if self.se is not None:
            x = self.se(x)
        if self.drop_path is not None:
            x = self.drop_path(x)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        return x + shortcut
