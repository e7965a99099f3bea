"""Modality-specific normalisation over modality-major stacks [M*B, C, H, W].

Shared convolutions see the whole stack; a `ModalityNorm` splits it into M chunks and normalises chunk m with
its own copy of the layer (each copy starts from the same — possibly pretrained — layer). With one copy ("shared")
the same layer normalises every chunk separately, as the official ShareBatchNorm2dParallel does, so statistics are
never mixed across modalities either way.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


class ModalityNorm(nn.Module):
    """Chunk m of the stack goes through `norms[m]` (or `norms[0]` for every chunk when shared).

    freeze_stats keeps the layers in eval mode even while the model trains: running statistics stay fixed and only
    the affine parameters learn (the official training default for encoder BNs).
    """

    def __init__(self, layer: nn.Module, num_modalities: int, shared: bool = False, freeze_stats: bool = False) -> None:
        super().__init__()
        self.num_modalities = num_modalities
        self.shared = shared
        self.freeze_stats = freeze_stats
        copies = 1 if shared else num_modalities
        self.norms = nn.ModuleList([copy.deepcopy(layer) for _ in range(copies)])
        self.train(layer.training)

    def forward(self, x: Tensor) -> Tensor:
        if self.num_modalities == 1:
            return self.norms[0](x)
        if x.shape[0] % self.num_modalities:
            raise ValueError(f"batch of {x.shape[0]} rows does not split into {self.num_modalities} modalities")
        chunks = x.chunk(self.num_modalities, dim=0)
        return torch.cat([self.norms[0 if self.shared else m](c) for m, c in enumerate(chunks)], dim=0)

    def train(self, mode: bool = True) -> ModalityNorm:
        super().train(mode)
        if self.freeze_stats:
            for norm in self.norms:
                # This layer only: an activation/drop fused into it (timm BatchNormAct2d) keeps its own mode.
                norm.training = False
        return self

    def modality_parameters(self) -> list[list[nn.Parameter]]:
        """Parameters of each modality's own copy ([] per modality when shared)."""
        if self.shared or self.num_modalities == 1:
            return [[] for _ in range(self.num_modalities)]
        return [list(norm.parameters()) for norm in self.norms]

    def extra_repr(self) -> str:
        return f"num_modalities={self.num_modalities}, shared={self.shared}, freeze_stats={self.freeze_stats}"


class ModalityBatchNorm(ModalityNorm):
    """M BatchNorms over the chunks of a stack; build from an existing (pretrained) BN or from a width."""

    def __init__(self, layer: nn.BatchNorm2d | int, num_modalities: int, shared: bool = False,
                 freeze_stats: bool = False) -> None:
        if isinstance(layer, int):
            layer = nn.BatchNorm2d(layer)
        super().__init__(layer, num_modalities, shared, freeze_stats)


class ModalityInstanceNorm(ModalityNorm):
    """M InstanceNorms (affine, running statistics as in CEN's InstanceNorm2dParallel) for the translation U-Net."""

    def __init__(self, channels: int, num_modalities: int, shared: bool = False,
                 track_running_stats: bool = True) -> None:
        layer = nn.InstanceNorm2d(channels, affine=True, track_running_stats=track_running_stats)
        super().__init__(layer, num_modalities, shared)


def convert_batchnorm(module: nn.Module, num_modalities: int, shared: bool = False, freeze_stats: bool = False,
                      required: bool = True) -> int:
    """Replace every BatchNorm2d in `module` (timm's BatchNormAct2d included) by a ModalityBatchNorm built from it.

    Returns the number converted. With required=True a module without BatchNorm raises, naming the norm layers it
    has instead, because modality-specific normalisation is the point of the shared-encoder methods.
    """
    targets = [(name, child) for name, child in module.named_modules()
               if isinstance(child, nn.modules.batchnorm._BatchNorm) and name]
    if not targets and required:
        others = sorted({type(m).__name__ for m in module.modules() if "norm" in type(m).__name__.lower()})
        raise ValueError(f"{type(module).__name__} has no BatchNorm layers to convert into modality-specific ones "
                         f"(its norm layers: {others or 'none'}); choose a backbone with BatchNorm, e.g. a ResNet, "
                         "RegNet or EfficientNet")
    for name, child in targets:
        replace_submodule(module, name, ModalityBatchNorm(child, num_modalities, shared, freeze_stats))
    return len(targets)


def replace_submodule(root: nn.Module, dotted_name: str, new: nn.Module) -> None:
    """root.<dotted_name> = new (works for Sequential/ModuleList/ModuleDict children too)."""
    parent_name, _, child_name = dotted_name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    parent._modules[child_name] = new
