"""`execution: loop`: every shared conv runs once per modality, as the official code does with ModuleParallel.

Stacked execution runs a shared conv once on the whole [M*B, C, H, W] stack; loop execution splits the stack into M
chunks for each conv and concatenates the results. Convs are per-sample operations, so outputs match stacked
execution within float tolerance; only the speed differs (for the stacked-vs-loop benchmark). Norms already act
per chunk and fusion ops need the whole stack, so they are left as they are. The conv's class is swapped for a
looping subclass, so state_dict keys do not change between modes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_LOOP_CLASSES: dict[type, type] = {}


class _PerModalityLoop:
    num_modalities: int

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        conv_forward = super().forward  # type: ignore[misc]
        return torch.cat([conv_forward(c) for c in x.chunk(self.num_modalities, dim=0)], dim=0)


def _loop_class(cls: type) -> type:
    if cls not in _LOOP_CLASSES:
        _LOOP_CLASSES[cls] = type(f"PerModality{cls.__name__}", (_PerModalityLoop, cls), {})
    return _LOOP_CLASSES[cls]


def loop_over_modalities(module: nn.Module, num_modalities: int) -> int:
    """Make every conv in `module` run once per modality chunk; returns how many convs were changed."""
    changed = 0
    for child in module.modules():
        if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d)) and not isinstance(child, _PerModalityLoop):
            child.__class__ = _loop_class(type(child))
            child.num_modalities = num_modalities
            changed += 1
    return changed
