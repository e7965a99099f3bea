"""One training step, for every task and method: the trainer's and `asymfusion bench`'s (which times this same step).

forward under autocast -> task loss + the method's auxiliary terms -> (non-finite: stop) -> zero_grad -> scaled
backward -> optimiser step -> the task's critic step (translation's PatchGAN) -> GradScaler update.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from asymfusion.benchmark.errors import NonFiniteLoss
from asymfusion.benchmark.tasks import Critic, Task


def _no_average(module: nn.Module) -> None:
    return None


@dataclass
class TrainStep:
    """`step(inputs, target)` -> (total loss, auxiliary terms), both detached. `model` may be DDP-wrapped; `core`
    is the FusionModel inside (its auxiliary_losses() are added to the task loss)."""

    task: Task
    model: nn.Module
    optimiser: torch.optim.Optimizer
    train: Any  # TrainConfig: l1_weight
    critic: Critic | None = None
    scaler: torch.amp.GradScaler | None = None
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    average_gradients: Callable[[nn.Module], None] = _no_average
    core: nn.Module | None = None
    last_outputs: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.core is None:
            self.core = getattr(self.model, "module", self.model)
        if self.scaler is None:
            self.scaler = torch.amp.GradScaler(enabled=False)

    def losses(self, inputs: dict[str, torch.Tensor], target: torch.Tensor
               ) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
        """(outputs, total loss, auxiliary terms) of a forward pass under autocast."""
        with self.autocast():
            outputs = self.model(inputs)
            loss = self.task.loss(outputs, target, inputs, self.critic, self.train)
            aux = self.core.auxiliary_losses()
            if aux:
                loss = loss + sum(aux.values())
        return outputs, loss, aux

    def __call__(self, inputs: dict[str, torch.Tensor], target: torch.Tensor
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        outputs, loss, aux = self.losses(inputs, target)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"loss is {loss.item()}")
        self.optimiser.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimiser)
        if self.critic is not None:
            self.critic.step(outputs, target, inputs, self.scaler, self.autocast, self.average_gradients)
        self.scaler.update()
        self.last_outputs = outputs
        return loss.detach(), {k: v.detach() for k, v in aux.items()}

    def forward_backward(self, inputs: dict[str, torch.Tensor], target: torch.Tensor) -> None:
        """Forward, every loss (the critic's too) and backward, no optimiser step: what a FLOP count measures."""
        outputs, loss, _ = self.losses(inputs, target)
        if self.critic is not None:
            loss = loss + self.critic.loss(outputs, target, inputs)
        loss.backward()
        self.optimiser.zero_grad(set_to_none=True)
        if self.critic is not None:
            self.critic.optimiser.zero_grad(set_to_none=True)


def drop_modalities(inputs: dict[str, torch.Tensor], p: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Modality dropout (`train.modality_dropout`): each sample, with probability p, has one of its modalities,
    chosen uniformly, replaced by zeros - what `evaluate` feeds for a missing modality (evaluate.blank: zeros; the
    normalised RGB mean colour, and depth "not measured") - so a model learns to predict with either input alone.
    Never more than one modality of a sample; the draws depend only on `generator` (seed, epoch, step, rank)."""
    names = list(inputs)
    if p <= 0 or len(names) < 2:
        return inputs
    batch = next(iter(inputs.values())).shape[0]
    dropped = torch.rand(batch, generator=generator) < p
    which = torch.randint(len(names), (batch,), generator=generator)
    out = {}
    for i, name in enumerate(names):
        keep = ~(dropped & (which == i))
        x = inputs[name]
        out[name] = x * keep.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.dim() - 1)))
    return out
