"""Which experiments, input sizes and batches `asymfusion bench` measures, and on which device (perf.py)."""

from __future__ import annotations

import torch

from asymfusion.benchmark.config import ConfigError, Params, RunConfig
from asymfusion.benchmark.config.perf import PerfSuiteConfig

Size = tuple[int, int]


def parse_size(text: str | int | tuple[int, int] | list[int]) -> Size:
    """64 -> (64, 64); '480x640' -> (480, 640)."""
    if isinstance(text, (tuple, list)):
        return int(text[0]), int(text[1])
    parts = str(text).lower().split("x")
    try:
        h, w = (int(parts[0]), int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    except (ValueError, IndexError):
        raise ConfigError(f"input size {text!r}: expected S or HxW, e.g. 64 or 480x640") from None
    if len(parts) > 2 or min(h, w) < 8:
        raise ConfigError(f"input size {text!r}: expected S or HxW with sides >= 8")
    return h, w


def size_name(size: Size) -> str:
    return f"{size[0]}x{size[1]}"


def suite_settings(params: Params, suite: str) -> PerfSuiteConfig:
    """The suite's `perf:` entry in params.yaml, or the defaults."""
    return params.perf.get(suite) or PerfSuiteConfig()


def select_experiments(params: Params, suite: str, methods: list[str] | None) -> list[str]:
    """One experiment per method x backbone x dataset of the suite; `methods` keeps those methods (or names an
    experiment directly, which is then included even if it repeats a method)."""
    if suite not in params.suites:
        raise ConfigError(f"unknown suite {suite!r}; allowed: {', '.join(params.suites)}")
    names = [n for n, e in params.experiments.items() if e.suite == suite]
    if not names:
        raise ConfigError(f"suite {suite!r} has no experiments in {params.source or 'params.yaml'}")
    if methods:
        known = {e.model["method"] for n, e in params.experiments.items() if n in names} | set(names)
        unknown = [m for m in methods if m not in known]
        if unknown:
            raise ConfigError(f"--methods {' '.join(unknown)}: not a method or experiment of suite {suite!r}; "
                              f"allowed: {', '.join(sorted(known))}")
    chosen, seen = [], set()
    for name in names:
        exp = params.experiments[name]
        key = (exp.model["method"], exp.model.get("backbone"), exp.data.dataset, tuple(exp.data.modalities))
        if methods and name not in methods and exp.model["method"] not in methods:
            continue
        if key in seen and not (methods and name in methods):
            continue
        seen.add(key)
        chosen.append(name)
    return chosen


def default_size(cfg: RunConfig) -> Size:
    """The experiment's training input: its crop, else the shape of its first training sample."""
    crop = cfg.data.train_transforms.crop
    if crop:
        return crop, crop
    try:
        from asymfusion.datasets import build_dataset

        sample = build_dataset(cfg.dataset, cfg.dataset_root, cfg.data, "train", augment=True, seed=cfg.seed,
                             hha_root=cfg.hha_root)[0]
        return tuple(sample[cfg.data.modalities[0]].shape[-2:])  # type: ignore[return-value]
    except Exception as error:
        raise ConfigError(f"{cfg.experiment}: no training crop and no readable sample to take the input size from "
                          f"({error}); give --sizes") from None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda but no CUDA device is available (use cpu or auto)")
    return torch.device(name)
