"""Optimisers and learning-rate schedules of both protocols (the losses belong to the tasks, benchmark/tasks/).

SGD (segmentation, official AsymFusion/CEN) or Adam (translation, CEN: 2e-4, betas 0.5/0.999) with separate
encoder / decoder (and ensemble) learning rates; poly decay, or the official stages with a fresh optimiser per stage.
Nothing here knows which fusion method it trains.
"""

from __future__ import annotations

import torch
from torch import nn

from asymfusion.benchmark.config import OptimiserConfig


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
