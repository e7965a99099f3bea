"""Scores under sensor corruptions (`evaluate.corruptions`, `asymfusion evaluate --corruptions`): evaluation only.

Each corruption of datasets/corruptions.py at each requested severity is applied to the validation samples in
physical units, before the depth encoding and normalisation, with the same seed for every method, and the model is
scored exactly as on clean data (same checkpoint, test-time augmentation and logits resize). The metrics JSON gets
`corruptions.scores: {"clean": ..., "depth/holes@3": {branch: {metric: value}}, ...}` ("clean" on the same images)
beside the clean `metrics`; the robustness
summaries (mean under corruption, relative robustness, mCE against a baseline) are computed from these files by
benchmark/report/robustness.py.
"""

from __future__ import annotations

import time
from typing import Any

from torch import nn
from torch.utils.data import DataLoader, Subset

from asymfusion.benchmark.config import RunConfig
from asymfusion.benchmark.engine.runtime import Runtime
from asymfusion.benchmark.engine.train import ShardSampler, validate
from asymfusion.datasets.corruptions import parse_corruption
from asymfusion.models.encoder import logits_resize

__all__ = ["corruption_scores"]


def corruption_scores(model: nn.Module, dataset: Any, cfg: RunConfig, runtime: Runtime, keys: list[str],
                      specs: list[str]) -> dict[str, Any]:
    """{corruption key: {branch: {metric: value}}} for every corruption named by `specs`, plus what it cost."""
    corruptions = [c for spec in specs for c in parse_corruption(spec)]
    if not corruptions:
        return {}
    if not hasattr(dataset, "set_corruption"):
        raise ValueError(f"evaluate.corruptions: the {cfg.dataset.task} loader has no corruption hook "
                         "(corruptions apply to segmentation)")
    n = min(len(dataset), cfg.evaluate.corruption_samples or len(dataset))
    subset = Subset(dataset, range(n))
    loader = DataLoader(subset, batch_size=cfg.data.val_batch_size, sampler=ShardSampler(n, runtime),
                        num_workers=cfg.data.num_workers)
    started = time.perf_counter()
    with logits_resize(cfg.evaluate.logits_resize):  # the reference: clean scores on the same images
        clean = validate(model, loader, cfg, runtime, keys)
    scores: dict[str, Any] = {"clean": {k: {m: v for m, v in row.items() if isinstance(v, float)}
                                        for k, row in clean.items()}}
    try:
        for corruption in corruptions:
            dataset.set_corruption(corruption, seed=cfg.evaluate.corruption_seed)
            with logits_resize(cfg.evaluate.logits_resize):
                rows = validate(model, loader, cfg, runtime, keys)
            scores[corruption.key] = {k: {m: v for m, v in row.items() if isinstance(v, float)}
                                      for k, row in rows.items()}
    finally:
        dataset.set_corruption(None)
    return {"samples": n, "seed": cfg.evaluate.corruption_seed, "seconds": round(time.perf_counter() - started, 2),
            "scores": scores}
