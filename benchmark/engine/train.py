"""The training loop of both tasks, for every registered fusion method.

Single process (CPU or one GPU):

    asymfusion train quick-asymfusion-s0

Several GPUs on one machine (DDP, one process per GPU; the batch size in params is per process):

    torchrun --standalone --nproc_per_node=4 -m asymfusion.benchmark.cli train paper-nyudv2-asymfusion-s0

A rerun of the same run resumes from its last checkpoint (written atomically at the end of every epoch) and ends
with exactly the numbers of an uninterrupted run on CPU: data order, augmentation, dropout and init are fixed by the
run's seed and the restored RNG states. A changed configuration refuses to resume unless `--restart` is given;
DVC stages pass `--on-change restart`, so a stage whose configuration or training code changed retrains from
scratch without asking (old checkpoints moved aside), and one whose checkpoint is complete and current rewrites its
history in seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from asymfusion.benchmark.engine import checkpoint as ckpt
from asymfusion.benchmark.config import ConfigError, RunConfig
from asymfusion.benchmark.errors import NonFiniteLoss
from asymfusion.benchmark.engine.metrics import OutputMetrics
from asymfusion.benchmark.engine.optim import Schedule, make_model_optimiser
from asymfusion.benchmark.engine.progress import RunProgress
from asymfusion.benchmark.engine.step import TrainStep, drop_modalities
from asymfusion.benchmark.tasks import get_task
from asymfusion.benchmark.engine.modelcheck import check_model_builds
from asymfusion.benchmark.engine.runtime import (Runtime, hardware, rng_state, seed_everything, set_rng_state,
                                                setup_runtime)
from asymfusion.datasets import build_dataset
from asymfusion.datasets.files import atomic_write

log = logging.getLogger("asymfusion.train")


class ShardSampler(torch.utils.data.Sampler):
    """Evaluation sharding without DistributedSampler's padding, so no sample is counted twice across ranks."""

    def __init__(self, n: int, runtime: Runtime) -> None:
        self.indices = list(range(runtime.rank, n, runtime.world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def make_loaders(cfg: RunConfig, runtime: Runtime) -> tuple[DataLoader, DataLoader, DistributedSampler]:
    train_ds = build_dataset(cfg.dataset, cfg.dataset_root, cfg.data, "train", augment=True, seed=cfg.seed,
                             hha_root=cfg.hha_root)
    val_ds = build_dataset(cfg.dataset, cfg.dataset_root, cfg.data, "val", augment=False, seed=cfg.seed,
                             hha_root=cfg.hha_root)
    sampler = DistributedSampler(train_ds, num_replicas=runtime.world_size, rank=runtime.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    common = dict(num_workers=cfg.data.num_workers, pin_memory=runtime.device.type == "cuda")
    train = DataLoader(train_ds, batch_size=cfg.data.batch_size, sampler=sampler, drop_last=True, **common)
    val = DataLoader(val_ds, batch_size=cfg.data.val_batch_size, sampler=ShardSampler(len(val_ds), runtime), **common)
    if len(train) == 0:
        raise ConfigError(f"{cfg.run}: data.batch_size {cfg.data.batch_size} x {runtime.world_size} processes is larger "
                         f"than the training set ({len(train_ds)} samples)")
    return train, val, sampler


def autocast(cfg: RunConfig, runtime: Runtime) -> contextlib.AbstractContextManager:
    if cfg.train.amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if cfg.train.amp == "bf16" else torch.float16
    return torch.autocast(device_type=runtime.device.type, dtype=dtype)


def to_device(batch: dict[str, torch.Tensor], runtime: Runtime, channels_last: bool) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in batch.items():
        value = value.to(runtime.device, non_blocking=True)
        if channels_last and value.dim() == 4:
            value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


@torch.no_grad()
def validate(model: nn.Module, loader: DataLoader, cfg: RunConfig, runtime: Runtime,
             metrics: OutputMetrics | list[str], progress: str | None = None) -> dict[str, dict[str, Any]]:
    """Metrics of every output over the whole validation set (reduced over ranks by torchmetrics).

    `metrics` is a ready OutputMetrics, or the model's output keys to build the standard one for; `progress`: a
    bar with this description and an ETA over the batches (evaluate on a terminal).
    """
    model.eval()
    if not isinstance(metrics, OutputMetrics):
        metrics = OutputMetrics(cfg.dataset.task, metrics, cfg.dataset.num_classes)
    metrics = metrics.to(runtime.device)
    from tqdm.auto import tqdm

    for batch in tqdm(loader, desc=progress, disable=progress is None or not runtime.is_main, leave=False,
                      mininterval=1.0):
        batch = to_device(batch, runtime, cfg.train.channels_last)
        with autocast(cfg, runtime):
            outputs = model({m: batch[m] for m in cfg.data.modalities})
        metrics.update(outputs, batch["target"])
    return metrics.compute()


def primary_metric(cfg: RunConfig) -> tuple[str, str]:
    """(name, direction) used to pick the best checkpoint: the task's main metric of the ensemble."""
    task = get_task(cfg.dataset.task)
    return task.main_metric, "max" if task.higher_is_better else "min"


def training_code_hash(cfg: RunConfig) -> str:
    """Hash of the package files a training of this run executes (benchmark/engine/codedeps.py), kept in checkpoints."""
    from asymfusion.benchmark.engine.codedeps import code_hash, stage_code

    return code_hash(stage_code("train", [cfg.model.method]))


def train_run(cfg: RunConfig, *, restart: bool = False, progress: bool = True, on_change: str = "refuse",
              on_epoch_end: Callable[[dict[str, Any]], None] | None = None, events: Any = None
              ) -> list[dict[str, Any]]:
    """Train (or resume) one run; returns the per-epoch history. Rank 0 writes checkpoints, log and history.

    A complete checkpoint of the same configuration and code trains nothing: its history and log are rewritten
    (what a DVC stage that reruns for another reason needs). `on_change` says what a checkpoint of another
    configuration or code means: "refuse" (exit 2; the command line's default) or "restart" (DVC stages).
    `on_epoch_end(row)` sees each epoch's history row (with the validation metrics) after its checkpoint is
    written; an exception it raises (e.g. optuna.TrialPruned) stops training with everything saved. `progress`:
    a bar with the run's ETA, else one line per epoch on stderr; `events`: a queue the progress goes to instead
    (benchmark/engine/progress.py, `--jobs N`).
    """
    from asymfusion.models import build_model

    check_model_builds(cfg.model, f"experiments.{cfg.experiment}.model")  # before the log file or any checkpoint
    runtime = setup_runtime(cfg.train.device, cfg.train.threads)
    if cfg.train.amp != "off" and runtime.device.type != "cuda":
        raise ConfigError(f"{cfg.run}: train.amp={cfg.train.amp!r} needs CUDA; set it to 'off' on CPU")
    seed_everything(cfg.seed, cfg.train.deterministic)
    new_log = _attach_log_file(cfg) if runtime.is_main else False
    code = training_code_hash(cfg)
    state = (ckpt.find_resumable(cfg.checkpoint_dir, cfg.train_hash(), restart, code_hash=code, on_change=on_change)
             if runtime.is_main else None)
    state = _broadcast_object(state, runtime)
    if state is not None and state["epoch"] >= cfg.train.epochs:
        if runtime.is_main:
            write_history(cfg, state["history"])
            log.info("%s: complete checkpoint (%d epochs, same configuration and code): nothing to train; history "
                     "rewritten", cfg.run, state["epoch"])
        return state["history"]
    try:
        train_loader, val_loader, sampler = make_loaders(cfg, runtime)
    except BaseException:
        if new_log:  # missing or malformed data: a start that did nothing leaves no log behind
            _detach_log_file(cfg, remove=True)
        raise
    steps = len(train_loader) if cfg.train.max_steps_per_epoch is None else min(len(train_loader),
                                                                               cfg.train.max_steps_per_epoch)
    task = get_task(cfg.dataset.task)
    model = build_model(cfg.model).to(runtime.device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    critic = task.build_critic(cfg.model, cfg.optimiser, runtime.device, cfg.train.channels_last)
    schedule = Schedule(cfg.optimiser, cfg.train.epochs, steps)
    optimiser = make_model_optimiser(cfg.optimiser, model, *schedule.base_lrs(0))
    scheduler = schedule.scheduler(optimiser)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=cfg.train.amp == "fp16")
    metric_name = task.main_metric
    start_epoch, history, best = 0, [], None

    if state is not None:
        start_epoch, history, best = state["epoch"], state["history"], state["best"]
        model.load_state_dict(state["model"])
        # At a stage boundary of the multistage schedule the next stage starts with a fresh optimiser (below).
        if not (cfg.optimiser.schedule == "multistage" and schedule.starts_stage(start_epoch)):
            optimiser.load_state_dict(state["optimiser"])
            if scheduler is not None:
                scheduler.load_state_dict(state["scheduler"])
        if critic is not None:
            critic.load_state_dict(state)
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][runtime.rank] if runtime.rank < len(state["rng"]) else state["rng"][0])
        log.info("resumed %s at epoch %d (best %s %s)", cfg.run, start_epoch, metric_name, best)

    core = model
    if runtime.distributed:
        # The discriminator is called several times per step, which DDP does not allow; its gradients are
        # averaged over ranks by hand instead (average_gradients).
        model = DistributedDataParallel(model, device_ids=[runtime.local_rank] if runtime.device.type == "cuda" else None)
    step_fn = TrainStep(task, model, optimiser, cfg.train, critic, scaler, lambda: autocast(cfg, runtime),
                        lambda module: average_gradients(module, runtime), core)

    shown = RunProgress(cfg.run, cfg.train.epochs, steps, start_epoch, bar=progress, queue=events,
                        enabled=runtime.is_main)
    for epoch in range(start_epoch, cfg.train.epochs):
        if schedule.starts_stage(epoch) and epoch > 0 and cfg.optimiser.schedule == "multistage":
            optimiser = step_fn.optimiser = make_model_optimiser(cfg.optimiser, model, *schedule.base_lrs(epoch))
        sampler.set_epoch(epoch)
        train_loader.dataset.set_epoch(epoch)
        model.train()
        if critic is not None:
            critic.train()
        started, seen, loss_sum, aux_sums = time.perf_counter(), 0, 0.0, {}
        shown.start_epoch(epoch)
        for step, batch in enumerate(train_loader):
            if step >= steps:
                break
            batch = to_device(batch, runtime, cfg.train.channels_last)
            inputs = {m: batch[m] for m in cfg.data.modalities}
            if cfg.train.modality_dropout:
                seed = ((cfg.seed * 100_003 + epoch) * 1_000_003 + step) * 1024 + runtime.rank
                draws = torch.Generator().manual_seed(seed)  # the same draws on a resume
                inputs = drop_modalities(inputs, cfg.train.modality_dropout, draws)
            try:
                loss, aux = step_fn(inputs, batch["target"])
            except NonFiniteLoss as error:
                raise NonFiniteLoss(f"{cfg.run}: {error} at epoch {epoch + 1}, step {step + 1} (global step "
                                    f"{epoch * steps + step + 1}); stopped, checkpoints left as they were") from None
            if scheduler is not None:
                scheduler.step()
            seen += batch["target"].shape[0]
            loss_sum += loss.item()
            for name, value in aux.items():
                aux_sums[name] = aux_sums.get(name, 0.0) + float(value)
            shown.step(loss.item(), seen * runtime.world_size / (time.perf_counter() - started))
        seconds = time.perf_counter() - started
        row: dict[str, Any] = {
            "epoch": epoch + 1, "stage": schedule.stage(epoch) + 1, "train_loss": loss_sum / max(1, steps),
            "seconds": seconds, "images_per_s": seen * runtime.world_size / max(seconds, 1e-9),
            **{f"lr_{g['name']}": g["lr"] for g in optimiser.param_groups},
            **{f"train_aux_{name}": total / max(1, steps) for name, total in aux_sums.items()},
            **{f"diag_{name}": value for name, value in core.diagnostics().items()},
        }
        if (epoch + 1) % cfg.train.eval_every == 0 or epoch + 1 == cfg.train.epochs:
            val = validate(model, val_loader, cfg, runtime, core.output_names)
            row.update({f"val_{k}_{m}": v for k, r in val.items() for m, v in r.items() if isinstance(v, float)})
        history.append(row)
        value = row.get(f"val_ensemble_{metric_name}")
        improved = value is not None and task.better(value, best)
        if improved:
            best = value
        log.info("%s epoch %d/%d loss %.4f %s", cfg.run, epoch + 1, cfg.train.epochs, row["train_loss"],
                 f"val {metric_name} {value:.3f}" if value is not None else "")
        shown.end_epoch(row, metric_name)
        rngs = _gather_object(rng_state(), runtime)
        if runtime.is_main:
            state = {
                "epoch": epoch + 1, "history": history, "best": best, "params_hash": cfg.train_hash(), "code_hash": code,
                "metric": metric_name, "model": core.state_dict(), "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None, "scaler": scaler.state_dict(),
                "rng": rngs, "hardware": hardware(runtime),
            }
            if critic is not None:
                state.update(critic.state_dict())
            ckpt.save_epoch(state, cfg.checkpoint_dir, improved)
            write_history(cfg, history)
        if on_epoch_end is not None:
            on_epoch_end(row)
    return history


def write_history(cfg: RunConfig, history: list[dict[str, Any]]) -> Path:
    """`history/<run>.json` (every epoch) and `history/<run>.val.json` (the validated epochs only: DVC plots cannot
    draw a field that some rows lack, and with `train.eval_every` > 1 most rows have no validation metrics)."""
    folder = cfg.results_dir / "history"
    folder.mkdir(parents=True, exist_ok=True)
    validated = [{k: v for k, v in row.items() if k in ("epoch", "stage") or k.startswith("val_")}
                 for row in history if any(k.startswith("val_") for k in row)]
    for path, rows in ((folder / f"{cfg.run}.json", history), (folder / f"{cfg.run}.val.json", validated)):
        atomic_write(path, json.dumps(rows, indent=1, default=_json_default))
    return folder / f"{cfg.run}.json"


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def average_gradients(module: nn.Module, runtime: Runtime) -> None:
    """Mean of each gradient over ranks (what DDP does, for a module DDP cannot wrap)."""
    if not runtime.distributed:
        return
    for p in module.parameters():
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)
            p.grad /= runtime.world_size


def _broadcast_object(obj: Any, runtime: Runtime) -> Any:
    if not runtime.distributed:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _gather_object(obj: Any, runtime: Runtime) -> list[Any]:
    if not runtime.distributed:
        return [obj]
    out: list[Any] = [None] * runtime.world_size
    torch.distributed.all_gather_object(out, obj)
    return out


def _log_path(cfg: RunConfig) -> Path:
    return cfg.results_dir / "logs" / f"{cfg.run}.log"


def _detach_log_file(cfg: RunConfig, remove: bool = False) -> None:
    for old in [h for h in log.handlers if isinstance(h, logging.FileHandler)]:
        log.removeHandler(old)  # one run per log file, also when a process trains several runs (tuning)
        old.close()
    if remove:
        _log_path(cfg).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the folders too, where this start created them
            _log_path(cfg).parent.rmdir()
            cfg.results_dir.rmdir()


def _attach_log_file(cfg: RunConfig) -> bool:
    """Log this run to its file; returns whether the file is new (so a failed start can take it back)."""
    path = _log_path(cfg)
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    _detach_log_file(cfg)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return new
