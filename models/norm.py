"""Modality-specific normalisation over modality-major stacks [M*B, C, H, W].

Shared convolutions see the whole stack; a `ModalityNorm` decides, per layer, which **statistics** and which
**affine parameters** normalise each modality's chunk (a `NormSpec`; presets in `NORM_PRESETS`):

- statistics `modality`: chunk m uses its own batch statistics in training and its own running statistics in
  evaluation (MSBN, the paper); `joint`: one set over the whole stack, in training and in evaluation (one ordinary
  BN: what a reader means by "shared BN"); `chunk`: each chunk's own batch statistics in training but one running
  estimate blended over all chunks for evaluation (the official, unused `ShareBatchNorm2dParallel`: a train/eval
  mismatch, kept to reproduce it).
- affine `modality`: one weight/bias per modality; `shared`: one for all.

Every copy starts from the same (possibly pretrained) layer.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .normspec import NORM_PRESETS, NormChoice, NormSpec, norm_spec

__all__ = ["NORM_PRESETS", "ModalityBatchNorm", "ModalityInstanceNorm", "ModalityNorm", "NormChoice", "NormSpec",
           "convert_batchnorm", "norm_spec", "replace_submodule"]


class ModalityNorm(nn.Module):
    """Normalise the M chunks of a stack with `norms` (copies of one layer) as `spec` says.

    Layout of `norms`: M copies when either part is per modality (shared affines are then the same Parameter in
    every copy; with joint statistics copy 0's buffers hold them), else one copy. freeze_stats keeps the layers in
    eval mode even while the model trains: running statistics stay fixed and only the affines learn (the official
    training default for encoder BNs).
    """

    def __init__(self, layer: nn.Module, num_modalities: int, spec: NormChoice | dict | None = None,
                 freeze_stats: bool = False) -> None:
        super().__init__()
        self.spec = norm_spec(spec)
        self.num_modalities = num_modalities
        self.freeze_stats = freeze_stats
        per_modality = "modality" in (self.spec.statistics, self.spec.affine)
        copies = num_modalities if per_modality and num_modalities > 1 else 1
        self.norms = nn.ModuleList([copy.deepcopy(layer) for _ in range(copies)])
        if copies > 1 and self.spec.affine == "shared" and getattr(layer, "weight", None) is not None:
            for norm in self.norms[1:]:
                norm.weight, norm.bias = self.norms[0].weight, self.norms[0].bias
        if copies > 1 and self.spec.statistics == "joint" and not isinstance(layer, nn.modules.batchnorm._BatchNorm):
            raise ValueError(f"joint statistics with per-modality affines need a BatchNorm, not {type(layer).__name__}")
        self.train(layer.training)

    def forward(self, x: Tensor) -> Tensor:
        m_count = self.num_modalities
        if m_count == 1 or (self.spec.statistics == "joint" and len(self.norms) == 1):
            return self.norms[0](x)
        if x.shape[0] % m_count:
            raise ValueError(f"batch of {x.shape[0]} rows does not split into {m_count} modalities")
        if self.spec.statistics == "joint":
            return self._joint_statistics_own_affine(x)
        chunks = x.chunk(m_count, dim=0)
        return torch.cat([self.norms[m if len(self.norms) > 1 else 0](c) for m, c in enumerate(chunks)], dim=0)

    def _joint_statistics_own_affine(self, x: Tensor) -> Tensor:
        """One BatchNorm's statistics (copy 0) over the whole stack, then chunk m's own affine (and activation)."""
        bn = self.norms[0]
        momentum = 0.0 if bn.momentum is None else bn.momentum
        if bn.training and bn.track_running_stats:
            bn.num_batches_tracked.add_(1)
            if bn.momentum is None:
                momentum = 1.0 / float(bn.num_batches_tracked)
        use_batch = bn.training or bn.running_mean is None
        track = not bn.training or bn.track_running_stats
        y = F.batch_norm(x, bn.running_mean if track else None, bn.running_var if track else None, None, None,
                         use_batch, momentum, bn.eps)
        chunks = []
        for norm, chunk in zip(self.norms, y.chunk(self.num_modalities, dim=0)):
            if norm.weight is not None:
                chunk = chunk * norm.weight[None, :, None, None] + norm.bias[None, :, None, None]
            for tail in ("drop", "act"):  # timm BatchNormAct2d: norm -> drop -> act
                if hasattr(norm, tail):
                    chunk = getattr(norm, tail)(chunk)
            chunks.append(chunk)
        return torch.cat(chunks, dim=0)

    def train(self, mode: bool = True) -> ModalityNorm:
        super().train(mode)
        if self.freeze_stats:
            for norm in self.norms:
                # This layer only: an activation/drop fused into it (timm BatchNormAct2d) keeps its own mode.
                norm.training = False
        return self

    def modality_parameters(self) -> list[list[nn.Parameter]]:
        """Parameters that belong to one modality alone ([] per modality when the affines are shared)."""
        if self.spec.affine == "shared" or len(self.norms) == 1:
            return [[] for _ in range(self.num_modalities)]
        return [list(norm.parameters()) for norm in self.norms]

    def extra_repr(self) -> str:
        return f"num_modalities={self.num_modalities}, spec={self.spec}, freeze_stats={self.freeze_stats}"


class ModalityBatchNorm(ModalityNorm):
    """BatchNorm over the chunks of a stack as `spec` says; built from an existing (pretrained) BN or a width."""

    def __init__(self, layer: nn.BatchNorm2d | int, num_modalities: int, spec: NormChoice | dict | None = None,
                 freeze_stats: bool = False) -> None:
        if isinstance(layer, int):
            layer = nn.BatchNorm2d(layer)
        super().__init__(layer, num_modalities, spec, freeze_stats)


class ModalityInstanceNorm(ModalityNorm):
    """InstanceNorms (affine, running statistics as in CEN's InstanceNorm2dParallel) for the translation U-Net."""

    def __init__(self, channels: int, num_modalities: int, spec: NormChoice | dict | None = None,
                 track_running_stats: bool = True) -> None:
        layer = nn.InstanceNorm2d(channels, affine=True, track_running_stats=track_running_stats)
        super().__init__(layer, num_modalities, spec)


def convert_batchnorm(module: nn.Module, num_modalities: int, spec: NormChoice | dict | None = None,
                      freeze_stats: bool = False, required: bool = True) -> int:
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
        replace_submodule(module, name, ModalityBatchNorm(child, num_modalities, spec, freeze_stats))
    return len(targets)


def replace_submodule(root: nn.Module, dotted_name: str, new: nn.Module) -> None:
    """root.<dotted_name> = new (works for Sequential/ModuleList/ModuleDict children too)."""
    parent_name, _, child_name = dotted_name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    parent._modules[child_name] = new
