"""Learning-rate schedules: poly decay, linear warm-up, and the multistage stage boundaries."""

from __future__ import annotations

import pytest
import torch

from asymfusion.benchmark.config import OptimiserConfig, StageConfig
from asymfusion.benchmark.engine.optim import Schedule


def _lrs(cfg: OptimiserConfig, epochs: int, steps: int) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = Schedule(cfg, epochs, steps).scheduler(opt)
    seen = []
    for _ in range(epochs * steps):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
    return seen


def test_poly_decays_from_the_base_lr_towards_zero() -> None:
    lrs = _lrs(OptimiserConfig(schedule="poly", poly_power=1.0), epochs=2, steps=5)
    assert lrs[0] == pytest.approx(1.0)
    assert lrs[5] == pytest.approx(0.5)  # linear for power 1: half-way through
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


def test_warmup_ramps_linearly_then_decays() -> None:
    lrs = _lrs(OptimiserConfig(schedule="poly", poly_power=1.0, warmup_epochs=1), epochs=3, steps=4)
    assert lrs[:5] == pytest.approx([0.25, 0.4375, 0.625, 0.8125, 1.0])  # 1/warmup up to the base LR
    assert lrs[-1] < 0.2
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:]))


def test_constant_schedule_has_no_scheduler_and_multistage_knows_its_boundaries() -> None:
    assert _lrs(OptimiserConfig(schedule="constant"), 1, 3) == [1.0, 1.0, 1.0]
    stages = [StageConfig(epochs=2, lr_encoder=1, lr_decoder=2), StageConfig(epochs=3, lr_encoder=0.5, lr_decoder=1)]
    schedule = Schedule(OptimiserConfig(schedule="multistage", stages=stages), epochs=5, steps_per_epoch=1)
    assert [schedule.starts_stage(e) for e in range(5)] == [True, False, True, False, False]
    assert schedule.base_lrs(3) == (0.5, 1)
    with pytest.raises(ValueError, match="warmup_epochs does not apply"):
        OptimiserConfig(schedule="multistage", stages=stages, warmup_epochs=1)
