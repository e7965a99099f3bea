"""Training objectives and optimisers of the two protocols. Nothing here knows which fusion method it trains.

- Segmentation (official AsymFusion/CEN): cross-entropy, ignore index 255, summed over every branch and the
  ensemble; SGD with separate encoder / decoder (and ensemble) learning rates; poly decay or the official stages
  with a fresh optimiser per stage.
- Translation (CEN): Adam (2e-4, betas 0.5/0.999) for generator and PatchGAN; generator loss = BCE adversarial +
  `l1_weight` x L1, over every branch and the ensemble.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asymfusion.benchmark.config import OptimiserConfig
from asymfusion.datasets.formats import IGNORE_INDEX


def segmentation_loss(outputs: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    return sum(F.cross_entropy(out.float(), target, ignore_index=IGNORE_INDEX) for out in outputs.values())


def _judge(discriminator: nn.Module, inputs: dict[str, torch.Tensor], image: torch.Tensor, key: str) -> torch.Tensor:
    """Patch logits of `image`: a branch's output given its own modality; the ensemble or a target given each."""
    modality = key if key in discriminator.modalities else None
    return discriminator(inputs, image, modality)


def generator_loss(outputs: dict[str, torch.Tensor], target: torch.Tensor, inputs: dict[str, torch.Tensor],
                   discriminator: nn.Module, l1_weight: float) -> torch.Tensor:
    total = torch.zeros((), device=target.device)
    for key, out in outputs.items():
        logits = _judge(discriminator, inputs, out, key)
        adversarial = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        total = total + adversarial + l1_weight * F.l1_loss(out, target)
    return total


def discriminator_loss(outputs: dict[str, torch.Tensor], target: torch.Tensor, inputs: dict[str, torch.Tensor],
                       discriminator: nn.Module) -> torch.Tensor:
    """0.5 x (BCE on the real target + mean BCE over every output judged as fake), as pix2pix/CEN."""
    real = discriminator(inputs, target, None)
    loss = F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
    fakes = [_judge(discriminator, inputs, out.detach(), key) for key, out in outputs.items()]
    loss = loss + sum(F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)) for f in fakes) / len(fakes)
    return 0.5 * loss


class Schedule:
    """Which learning rates apply at (epoch, step); knows the stage boundaries of the multistage schedule."""

    def __init__(self, cfg: OptimiserConfig, epochs: int, steps_per_epoch: int) -> None:
        self.cfg = cfg
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.stage_starts = [0]
        if cfg.schedule == "multistage":
            assert cfg.stages
            for stage in cfg.stages[:-1]:
                self.stage_starts.append(self.stage_starts[-1] + stage.epochs)

    def stage(self, epoch: int) -> int:
        return max(i for i, start in enumerate(self.stage_starts) if start <= epoch)

    def starts_stage(self, epoch: int) -> bool:
        return epoch in self.stage_starts

    def base_lrs(self, epoch: int) -> tuple[float, float]:
        if self.cfg.schedule == "multistage":
            s = self.cfg.stages[self.stage(epoch)]  # type: ignore[index]
            return s.lr_encoder, s.lr_decoder
        return self.cfg.lr_encoder, self.cfg.lr_decoder

    def scheduler(self, optimiser: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler | None:
        """Per-iteration schedule (torch's schedulers): optional linear warm-up, then poly decay; None if constant."""
        warmup = round(self.cfg.warmup_epochs * self.steps_per_epoch)
        total = self.epochs * self.steps_per_epoch
        if self.cfg.schedule == "poly":
            main = torch.optim.lr_scheduler.PolynomialLR(optimiser, total_iters=max(1, total - warmup),
                                                         power=self.cfg.poly_power)
        elif warmup:
            main = torch.optim.lr_scheduler.ConstantLR(optimiser, factor=1.0, total_iters=0)
        else:
            return None
        if not warmup:
            return main
        ramp = torch.optim.lr_scheduler.LinearLR(optimiser, start_factor=1.0 / warmup, total_iters=warmup)
        return torch.optim.lr_scheduler.SequentialLR(optimiser, [ramp, main], milestones=[warmup])


def _groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    core = model.module if hasattr(model, "module") else model
    return {k: [p for p in v if p.requires_grad] for k, v in core.param_groups().items()}


def make_model_optimiser(cfg: OptimiserConfig, model: nn.Module, lr_encoder: float,
                         lr_decoder: float) -> torch.optim.Optimizer:
    """SGD or Adam over the model's encoder / decoder / ensemble groups, each with its own learning rate."""
    lrs = {"encoder": lr_encoder, "decoder": lr_decoder, "ensemble": cfg.lr_ensemble}
    groups = [{"params": params, "lr": lrs[name], "name": name}
              for name, params in _groups(model).items() if params]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=lr_decoder, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(groups, lr=lr_decoder, betas=cfg.betas, weight_decay=cfg.weight_decay)


def make_discriminator_optimiser(cfg: OptimiserConfig, discriminator: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(discriminator.parameters(), lr=cfg.lr_discriminator, betas=cfg.betas)
