"""What `asymfusion bench` runs: one model variant (experiment x execution at an input size and batch) with its
training step and inference call, the stacked-vs-loop output check, and the data-loading measurement.

The training step is the trainer's (benchmark/engine/train.py): forward under autocast, the task loss of
benchmark/engine/optim.py, zero_grad, backward, optimiser step (plus the PatchGAN step for translation), on synthetic
tensors of the right shapes, so it measures compute. The data-loading share uses the real DataLoader instead.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from collections.abc import Iterator
from typing import Any, Callable

import torch
from torch import nn

from asymfusion.benchmark.config import RunConfig
from asymfusion.benchmark.engine.optim import Schedule, make_model_optimiser
from asymfusion.benchmark.engine.step import TrainStep
from asymfusion.benchmark.tasks import Critic, get_task
from asymfusion.benchmark.perf.measure import count_flops, summarize, synchronize, time_call

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Setup:
    """How every variant runs: device, autocast dtype, memory format, torch.compile."""

    device: torch.device
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        dtype = AMP_DTYPES[self.amp]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def place(self, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.to(self.device, non_blocking=True)
        if self.channels_last and tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor


def loop_applies(model: nn.Module) -> bool:
    """True when execution='loop' changed something (a shared encoder over a stack of >= 2 modalities)."""
    from asymfusion.models.execution import _PerModalityLoop

    return any(isinstance(m, _PerModalityLoop) for m in model.modules())


def synthetic_batch(cfg: RunConfig, batch: int, size: tuple[int, int], seed: int = 0) -> dict[str, torch.Tensor]:
    """Normalised-looking inputs of every modality and a valid target, at the given batch and input size."""
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    out = {m: torch.randn(batch, c, h, w, generator=gen) for m, c in cfg.model.in_channels.items()}
    out["target"] = get_task(cfg.dataset.task).synthetic_target(cfg.model, batch, (h, w), gen)
    return out


@dataclass
class Variant:
    """One model to time: an experiment's resolved model with one execution mode, its training step and a batch."""

    experiment: str
    cfg: RunConfig
    execution: str
    setup: Setup
    model: nn.Module
    optimiser: torch.optim.Optimizer
    critic: Critic | None = None
    runner: Callable[..., Any] | None = None
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    target: torch.Tensor | None = None
    train_times: list[float] = field(default_factory=list)
    infer_times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The trainer's step (benchmark/engine/step.py) on the compiled runner when there is one; bench's amp is
        # off or bf16, so the GradScaler is disabled exactly as in training with those settings.
        self.step = TrainStep(get_task(self.cfg.dataset.task), self.runner or self.model, self.optimiser,
                              self.cfg.train, self.critic, autocast=self.setup.autocast, core=self.model)

    @property
    def key(self) -> tuple[str, str]:
        return self.experiment, self.execution

    def set_batch(self, batch: dict[str, torch.Tensor]) -> None:
        self.inputs = {m: self.setup.place(batch[m]) for m in self.cfg.data.modalities}
        self.target = self.setup.place(batch["target"])

    def train_step(self) -> None:
        self.step(self.inputs, self.target)

    def infer(self) -> None:
        run = self.model if self.runner is None else self.runner
        with torch.inference_mode(), self.setup.autocast():
            run(self.inputs)

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)
        if self.critic is not None:
            self.critic.train(mode)

    def training_flops(self) -> int:
        """FLOPs of forward + every loss + backward of one step (eager model; FlopCounterMode)."""
        eager = TrainStep(self.step.task, self.model, self.optimiser, self.cfg.train, self.critic, core=self.model)
        return count_flops(lambda: eager.forward_backward(self.inputs, self.target))

    def optimisers(self) -> list[torch.optim.Optimizer]:
        return [self.optimiser] + ([self.critic.optimiser] if self.critic is not None else [])


def build_variant(experiment: str, cfg: RunConfig, execution: str, setup: Setup,
                  state: dict[str, torch.Tensor] | None = None) -> Variant:
    """The experiment's model with `execution` (random init); `state` (a stacked model's state_dict) makes the
    weights identical."""
    from asymfusion.models import build_model

    torch.manual_seed(cfg.seed)
    # Weights do not change the cost: pretrained checkpoints are not loaded (a benchmark needs no download).
    model = build_model(cfg.model.model_copy(update={"execution": execution, "pretrained": False,
                                                     "pretrained_file": None}))
    if state is not None:
        model.load_state_dict(state)
    model = model.to(setup.device)
    if setup.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimiser = make_model_optimiser(cfg.optimiser, model, *Schedule(cfg.optimiser, cfg.train.epochs, 1).base_lrs(0))
    torch.manual_seed(cfg.seed + 1)
    critic = get_task(cfg.dataset.task).build_critic(cfg.model, cfg.optimiser, setup.device, setup.channels_last)
    runner = torch.compile(model) if setup.compile else None
    return Variant(experiment, cfg, execution, setup, model, optimiser, critic, runner)


@contextlib.contextmanager
def _full_fp32() -> Iterator[None]:
    """TF32 off for convolutions and matmuls (on by default for cuDNN convs): TF32's 10-bit mantissa would differ
    between the two executions by more than any useful tolerance, hiding whether the maths is the same."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def compare_outputs(stacked: nn.Module, loop: nn.Module, inputs: dict[str, torch.Tensor],
                    device: torch.device) -> dict[str, Any]:
    """Eval-mode full-fp32 outputs of the two executions on the same weights: every output key, assert_close."""
    rtol, atol = (1e-3, 1e-4) if device.type == "cuda" else (1e-4, 1e-5)  # cuDNN picks other algorithms per batch
    modes = stacked.training, loop.training
    stacked.eval()
    loop.eval()
    try:
        with torch.no_grad(), _full_fp32():
            a, b = stacked(inputs), loop(inputs)
    finally:
        stacked.train(modes[0])
        loop.train(modes[1])
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    scale = max(float(a[k].float().abs().max()) for k in a)
    result = {"outputs_match": True, "max_abs_diff": diff, "max_abs_output": scale, "rtol": rtol, "atol": atol,
              "keys": sorted(a)}
    try:
        assert sorted(a) == sorted(b), f"output keys differ: {sorted(a)} vs {sorted(b)}"
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=rtol, atol=atol, msg=lambda m, k=key: f"{k}: {m}")
    except AssertionError as error:
        result.update(outputs_match=False, error=str(error).splitlines()[0])
    return result


def measure_data_share(variant: Variant, n_batches: int, warmup: int) -> dict[str, Any]:
    """Time to fetch a batch from the experiment's real train DataLoader (configured num_workers) vs the step on it.

    Fetch and step alternate as in training, so with workers the fetch time is the wait the loop actually sees
    (prefetching overlaps with the step). share = total fetch / (total fetch + total step).
    """
    from asymfusion.benchmark.engine.runtime import Runtime
    from asymfusion.benchmark.engine.train import make_loaders

    cfg, device = variant.cfg, variant.setup.device
    root = cfg.dataset_root
    if not (root / "train.txt").is_file():
        return {"status": "skipped", "reason": f"{root}/train.txt not found: the dataset is not prepared "
                f"(quick suite: `asymfusion prepare synthetic`)"}
    try:
        loader, _, sampler = make_loaders(cfg, Runtime(device=device))
    except Exception as error:  # a bad data file or an empty split: recorded, not fatal to the benchmark
        return {"status": "skipped", "reason": f"could not build the loader: {type(error).__name__}: {error}"}
    first = _time_loader_epoch(variant, loader, sampler, 0, n_batches, warmup, device)
    if first is None:
        return {"status": "skipped", "reason": f"the train loader has fewer than {warmup + 1} batches"}
    result = {"status": "measured", "num_workers": cfg.data.num_workers, "batch": cfg.data.batch_size,
              "input_size": list(variant.inputs[cfg.data.modalities[0]].shape[-2:]), **first}
    if cfg.data.cache_decoded and cfg.data.num_workers == 0 and cfg.train.epochs > 1:
        # Epochs after the first read the decoded-sample cache: fill it, time epoch 1, weigh by the run's epochs.
        for index in range(len(loader.dataset)):
            loader.dataset.load_raw(index)
        later = _time_loader_epoch(variant, loader, sampler, 1, n_batches, warmup, device)
        if later is not None:
            epochs = cfg.train.epochs
            result.update(first_epoch=first, later_epochs=later,
                          share=(first["share"] + (epochs - 1) * later["share"]) / epochs,
                          load=later["load"], step=later["step"],
                          share_note=f"cache_decoded: first epoch decodes, epochs 2-{epochs} read the cache; share "
                                     f"= epoch-weighted mean")
    return result


def _time_loader_epoch(variant: Variant, loader: Any, sampler: Any, epoch: int, n_batches: int, warmup: int,
                       device: torch.device) -> dict[str, Any] | None:
    """Fetch time of each batch from the real DataLoader vs the training step on it, for one epoch's first batches."""
    sampler.set_epoch(epoch)
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)
    loads, steps = [], []
    iterator = iter(loader)
    first_ms = None
    for i in range(warmup + n_batches):
        t0 = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            break
        variant.set_batch(batch)
        synchronize(device)
        load = time.perf_counter() - t0
        step = time_call(variant.train_step, device)
        if i == 0:
            first_ms = load * 1e3  # includes starting the workers
        if i >= warmup:
            loads.append(load)
            steps.append(step)
    del iterator
    if not loads:
        return None
    return {"first_batch_ms": first_ms, "load": summarize(loads), "step": summarize(steps),
            "share": sum(loads) / (sum(loads) + sum(steps))}


def forward_gflops_per_image(variant: Variant, size: tuple[int, int]) -> float:
    """Forward GFLOPs of one image (every modality), as the metrics JSON reports them (evaluate.gflops_per_image)."""
    from asymfusion.benchmark.engine.evaluate import gflops_per_image

    sample = synthetic_batch(variant.cfg, 1, size)
    inputs = {m: variant.setup.place(sample[m]) for m in variant.cfg.data.modalities}
    try:
        return gflops_per_image(variant.model, inputs)
    finally:
        variant.model.train()
