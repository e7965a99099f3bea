"""Evaluate a trained run and write its metrics JSON (docs/design.md §8): `asymfusion evaluate RUN`.

The paper protocol is single scale at full resolution; flip and multi-scale averaging are options. Every branch
and the ensemble are reported, plus missing-modality robustness (each modality blanked in turn) and a qualitative
grid. Translation adds FID and KID when the Inception weights file exists; when it does not, the JSON says so and why.
"""

from __future__ import annotations

import copy

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from asymfusion.benchmark.engine import checkpoint as ckpt
from asymfusion.benchmark.config import RunConfig
from asymfusion.benchmark.engine.metrics import (STANDIN_NOTE, DistributionMetrics, OutputMetrics, StandInFeatures,
                                                inception_extractor, not_computed)
from asymfusion.benchmark.engine.protocol import protocol_record
from asymfusion.benchmark.engine.qualitative import qualitative_grid
from asymfusion.benchmark.engine.robustness import corruption_scores
from asymfusion.benchmark.engine.modelcheck import check_model_builds
from asymfusion.benchmark.engine.runtime import Runtime, cpu_model, seed_everything, setup_runtime
from asymfusion.benchmark.engine.train import ShardSampler, validate
from asymfusion.benchmark.tasks import get_task
from asymfusion.datasets import build_dataset
from asymfusion.datasets.files import atomic_write
from asymfusion.datasets.transforms import NEAREST_KEYS
from asymfusion.models.encoder import logits_resize, upsample_to

SCHEMA_VERSION = 2  # 2: the protocol record (benchmark/engine/protocol.py)


def _resize(x: torch.Tensor, size: tuple[int, int], nearest: bool) -> torch.Tensor:
    """Depth is resized by nearest neighbour (as in training: no invented depths at edges), images bilinearly."""
    if nearest:
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class TestTimeAugment(nn.Module):
    """Average class probabilities over scales and an optional horizontal flip (segmentation)."""

    def __init__(self, model: nn.Module, scales: list[float], flip: bool, nearest: frozenset[str]) -> None:
        super().__init__()
        self.model, self.scales, self.flip, self.nearest = model, scales, flip, nearest

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        h, w = next(iter(inputs.values())).shape[-2:]
        total: dict[str, torch.Tensor] = {}
        for scale in self.scales:
            size = (max(8, round(h * scale)), max(8, round(w * scale)))
            scaled = {k: v if scale == 1.0 else _resize(v, size, nearest=k in self.nearest) for k, v in inputs.items()}
            for flipped in ([False, True] if self.flip else [False]):
                x = {k: v.flip(-1) for k, v in scaled.items()} if flipped else scaled
                for key, logits in self.model(x).items():
                    probs = upsample_to(logits.float(), (h, w)).softmax(1)  # evaluate.logits_resize
                    probs = probs.flip(-1) if flipped else probs
                    total[key] = total.get(key, 0) + probs
        return total


class Blank(nn.Module):
    """Replace one modality by zeros or its dataset mean before the model sees it."""

    def __init__(self, model: nn.Module, modality: str, fill: torch.Tensor | None) -> None:
        super().__init__()
        self.model, self.modality, self.fill = model, modality, fill

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = inputs[self.modality]
        blank = torch.zeros_like(x) if self.fill is None else self.fill.to(x).view(1, -1, 1, 1).expand_as(x)
        return self.model({**inputs, self.modality: blank})


def modality_means(dataset, modalities: list[str], limit: int = 256) -> dict[str, torch.Tensor]:
    """Per-channel mean of each (normalised) modality over up to `limit` samples."""
    sums: dict[str, torch.Tensor] = {}
    n = min(limit, len(dataset))
    for i in range(n):
        sample = dataset[i]
        for m in modalities:
            sums[m] = sums.get(m, 0) + sample[m].float().mean(dim=(1, 2))
    return {m: s / n for m, s in sums.items()}


def count_parameters(model: nn.Module) -> int:
    """Trainable-or-not parameters, BN running statistics (buffers) excluded."""
    return sum(p.numel() for p in model.parameters())


def gflops_per_image(model: nn.Module, sample: dict[str, torch.Tensor]) -> float:
    """Forward GFLOPs for one image by torch's FLOP counter (a multiply-add counts as 2 FLOPs), counted on a copy of
    the model on the meta device: shapes only, so a full-resolution paper model costs no real forward."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    shadow = copy.deepcopy(model).to("meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        shadow({k: v.to("meta") for k, v in sample.items()})
    return counter.get_total_flops() / 1e9


def git_revision() -> dict[str, Any]:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                    text=True, check=True).stdout.strip())
        return {"commit": rev, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def environment(runtime: Runtime) -> dict[str, Any]:
    import timm
    import torchmetrics

    device = str(runtime.device)
    if runtime.device.type == "cuda":
        device = torch.cuda.get_device_name(runtime.device)
    return {"python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
            "torchmetrics": torchmetrics.__version__, "device": device, "threads": torch.get_num_threads(),
            "world_size": runtime.world_size, "platform": platform.platform(), "cpu": cpu_model(),
            # the CPU kernels' instruction set: oneDNN picks other kernels per ISA, so float results match bit for
            # bit only between machines of the same capability (tests/test_reproducibility.py)
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def _distribution_metrics(cfg: RunConfig, keys: list[str], n: int,
                          extractor: nn.Module | None) -> tuple[DistributionMetrics | None, dict[str, Any]]:
    if not get_task(cfg.dataset.task).distribution_metrics:
        return None, {}
    if not cfg.evaluate.fid_kid:
        return None, not_computed("disabled by evaluate.fid_kid: false")
    if n < 2:  # a covariance (FID) and a kernel mean over pairs (KID) need two images at least
        return None, not_computed(f"FID/KID need at least 2 validation images; the split has {n}")
    if extractor is None and cfg.evaluate.fid_features == "standin":
        return (DistributionMetrics(keys, StandInFeatures(), n, cfg.evaluate.kid_subsets, cfg.evaluate.kid_subset_size),
                {"features": STANDIN_NOTE})
    if extractor is None:
        if not cfg.inception_weights.is_file():
            return None, not_computed(f"Inception weights not found at {cfg.inception_weights} "
                                      "(run `asymfusion fetch inception`)")
        extractor = inception_extractor(cfg.inception_weights)
    return DistributionMetrics(keys, extractor, n, cfg.evaluate.kid_subsets, cfg.evaluate.kid_subset_size), {}


def evaluate_run(cfg: RunConfig, *, extractor: nn.Module | None = None, checkpoint: str = ckpt.BEST,
                 corruptions: list[str] | None = None, max_samples: int | None = None,
                 progress: bool = False) -> dict[str, Any]:
    """Evaluate the run's best checkpoint on the validation split and write `results/<suite>/metrics/<run>.json`.

    `corruptions` (default: evaluate.corruptions) adds scores under sensor corruptions (benchmark/engine/robustness.py);
    `max_samples` scores the first N validation images only (a smoke check: the record's protocol says how many);
    `progress`: a bar with an ETA over the clean pass."""
    from asymfusion.models import build_model

    check_model_builds(cfg.model, f"experiments.{cfg.experiment}.model")
    runtime = setup_runtime(cfg.train.device, cfg.evaluate.threads)  # one process: every core by default
    seed_everything(cfg.seed)
    path = cfg.checkpoint_dir / checkpoint
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: train the run first (`asymfusion train {cfg.run}`)")
    other = "last" if checkpoint == ckpt.BEST else "best"
    other_path = cfg.checkpoint_dir / f"{other}.pt"
    restart = f"retrain with `asymfusion train {cfg.run} --restart` (moves the checkpoints aside)"
    if other_path.is_file() and os.path.samefile(path, other_path):  # the best epoch was the last: one file
        fix = f"{restart}; {other_path.name} is the same file (the best epoch was the last), damaged with it"
    else:
        fix = f"{restart}, or evaluate the other one (`--checkpoint {other}`)"
    state = ckpt.load(path, fix=fix)
    if state.get("params_hash") != cfg.train_hash():
        raise ckpt.ResumeMismatch(f"{path} was trained with a different configuration (params hash "
                                  f"{state['params_hash']} != {cfg.train_hash()}); retrain the run")
    model = build_model(cfg.model).to(runtime.device)
    model.load_state_dict(state["model"])
    model.eval()
    if cfg.train.channels_last:  # as trained: validate() feeds channels_last inputs too
        model = model.to(memory_format=torch.channels_last)
    dataset = build_dataset(cfg.dataset, cfg.dataset_root, cfg.data, "val", augment=False, seed=cfg.seed,
                             hha_root=cfg.hha_root)
    n_samples = len(dataset) if max_samples is None else min(max_samples, len(dataset))
    loader = DataLoader(dataset, batch_size=cfg.data.val_batch_size, sampler=ShardSampler(n_samples, runtime),
                        num_workers=cfg.data.num_workers)
    keys = list(model.output_names)
    task = cfg.dataset.task
    evaluated: nn.Module = model
    if get_task(task).test_time_augmentation and (cfg.evaluate.flip or cfg.evaluate.scales != [1.0]):
        evaluated = TestTimeAugment(model, cfg.evaluate.scales, cfg.evaluate.flip, NEAREST_KEYS)

    started = time.perf_counter()
    distribution, distribution_note = _distribution_metrics(cfg, keys, n_samples, extractor)
    metrics = OutputMetrics(task, keys, cfg.dataset.num_classes, distribution)
    with logits_resize(cfg.evaluate.logits_resize):
        results = validate(evaluated, loader, cfg, runtime, metrics,
                           progress=f"{cfg.run} {checkpoint}" if progress else None)
    eval_seconds = time.perf_counter() - started
    for row in results.values():
        if "features" in distribution_note:  # computed, with stand-in features: said beside the numbers
            row["fid_features"] = distribution_note["features"]
        elif distribution_note:
            row["fid"] = row["kid_x100"] = distribution_note

    train_ds = build_dataset(cfg.dataset, cfg.dataset_root, cfg.data, "train", augment=False, seed=cfg.seed,
                             hha_root=cfg.hha_root)
    means = modality_means(train_ds, cfg.data.modalities) if cfg.evaluate.blank == "mean" else {}
    robustness = {}
    for m in cfg.data.modalities:
        with logits_resize(cfg.evaluate.logits_resize):
            blanked = validate(Blank(evaluated, m, means.get(m)), loader, cfg, runtime, keys)
        robustness[m] = {k: {n: v for n, v in row.items() if isinstance(v, float)} for k, row in blanked.items()}

    specs = cfg.evaluate.corruptions if corruptions is None else corruptions
    corrupted = corruption_scores(evaluated, dataset, cfg, runtime, keys, specs, n_samples) if specs else None

    sample = {k: v[None].to(runtime.device) for k, v in dataset[0].items() if k in cfg.data.modalities}
    history = state["history"]
    input_size = list(sample[cfg.data.modalities[0]].shape[-2:])
    record = {
        "schema": SCHEMA_VERSION,
        "run": cfg.run, "experiment": cfg.experiment, "suite": cfg.suite, "seed": cfg.seed,
        "method": cfg.model.method, "backbone": cfg.model.backbone, "task": task, "dataset": cfg.dataset_name,
        "modalities": cfg.data.modalities, "target": cfg.data.target,
        "params_hash": cfg.params_hash(), "train_hash": cfg.train_hash(), "git": git_revision(),
        "parameters": count_parameters(model), "gflops_per_image": gflops_per_image(model, sample),
        "input_size": input_size,
        "checkpoint": {"file": checkpoint, "epoch": state["epoch"], "best": state["best"], "metric": state["metric"]},
        "outputs": keys, "metrics": results, "diagnostics": model.diagnostics(),
        "robustness": {"blank": cfg.evaluate.blank, "blanked": robustness},
        "corruptions": corrupted,
        "protocol": protocol_record(cfg, runtime, state, checkpoint, n_samples, input_size),
        "overrides": cfg.overrides,
        "timings": {"train_seconds": sum(r["seconds"] for r in history),
                    "train_images_per_s": history[-1]["images_per_s"] if history else None,
                    "eval_seconds": eval_seconds},
        "history": history, "environment": environment(runtime), "config": cfg.to_dict(),
    }
    if runtime.is_main:
        grid = qualitative_grid(model, dataset, keys, task, runtime.device,
                                cfg.results_dir / "plots" / "qualitative" / f"{cfg.run}.png",
                                n=cfg.evaluate.grid_samples, num_classes=cfg.dataset.num_classes, title=cfg.run,
                                class_names=cfg.dataset.class_names)
        record["qualitative_grid"] = str(grid) if grid else None
        _write_json(cfg.results_dir / "metrics" / f"{cfg.run}.json", record)
        _write_json(cfg.results_dir / "scores" / f"{cfg.run}.json", headline_scores(record))
    return record


def headline_scores(record: dict[str, Any]) -> dict[str, float]:
    """The few numbers DVC shows per run (`dvc metrics show`, `dvc exp show`): the ensemble's headline metrics,
    each branch's main metric, GFLOPs and millions of parameters. Everything else stays in the full metrics JSON."""
    names = get_task(record["task"]).headline
    ensemble = record["metrics"]["ensemble"]
    scores = {n: round(ensemble[n], 4) for n in names if isinstance(ensemble.get(n), (int, float))}
    for branch in record["outputs"]:
        value = record["metrics"][branch].get(names[0])
        if branch != "ensemble" and isinstance(value, (int, float)):
            scores[f"{branch}_{names[0]}"] = round(value, 4)
    scores["gflops"] = round(record["gflops_per_image"], 4)
    scores["mparams"] = round(record["parameters"] / 1e6, 4)
    return scores


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=1))

