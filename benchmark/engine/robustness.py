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
import numpy as np

from asymfusion.datasets.corruptions import Corruption, apply_corruption, parse_corruption
from asymfusion.datasets.formats import DataFormatError
from asymfusion.datasets.hha import CameraIntrinsics, encode_hha, hha
from asymfusion.datasets.tasks import data_task
from asymfusion.models.encoder import logits_resize

__all__ = ["CorruptedView", "corruption_scores"]


def corruption_scores(model: nn.Module, dataset: Any, cfg: RunConfig, runtime: Runtime, keys: list[str],
                      specs: list[str], limit: int | None = None) -> dict[str, Any]:
    """{corruption key: {branch: {metric: value}}} for every corruption named by `specs`, plus what it cost."""
    corruptions = [c for spec in specs for c in parse_corruption(spec)]
    if not corruptions:
        return {}
    if not data_task(cfg.dataset.task).corruptible:
        raise ValueError(f"evaluate.corruptions: the {cfg.dataset.task} loader has no corruption hook "
                         "(corruptions apply to segmentation)")
    n = min(limit or len(dataset), cfg.evaluate.corruption_samples or len(dataset))

    def scores_of(view: Any) -> dict[str, dict[str, float]]:
        loader = DataLoader(Subset(view, range(n)), batch_size=cfg.data.val_batch_size,
                            sampler=ShardSampler(n, runtime), num_workers=cfg.data.num_workers)
        with logits_resize(cfg.evaluate.logits_resize):
            rows = validate(model, loader, cfg, runtime, keys)
        return {k: {m: v for m, v in row.items() if isinstance(v, float)} for k, row in rows.items()}

    started = time.perf_counter()
    scores: dict[str, Any] = {"clean": scores_of(dataset)}  # the reference: clean scores on the same images
    for corruption in corruptions:
        scores[corruption.key] = scores_of(CorruptedView(dataset, corruption, seed=cfg.evaluate.corruption_seed))
    return {"samples": n, "seed": cfg.evaluate.corruption_seed, "seconds": round(time.perf_counter() - started, 2),
            "scores": scores}


class CorruptedView:
    """A loader's samples under one corruption (what `evaluate --corruptions` scores): each decoded sample
    (`dataset.load_raw`) is corrupted in physical units, its HHA image recomputed from the corrupted depth with the
    frame's recorded camera when the depth is fed as HHA, then encoded and normalised by the loader (`dataset.sample`).
    Kept outside the loader, so the training code never runs a corruption."""

    def __init__(self, dataset, corruption: Corruption, seed: int = 0) -> None:
        if not all(hasattr(dataset, name) for name in ("load_raw", "sample")):
            raise ValueError(f"{type(dataset).__name__} cannot be corrupted: it needs load_raw() and sample()")
        self.dataset, self.corruption, self.seed = dataset, corruption, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        raw = apply_corruption(self.dataset.load_raw(index), self.corruption, self.seed, index)
        frames = getattr(self.dataset, "hha", None)
        if self.corruption.modality == "depth" and frames is not None:
            raw["hha"] = _recompute_hha(frames, self.dataset.path(index, "depth").stem, raw["depth"])
        return self.dataset.sample(raw, index)


def _recompute_hha(frames, key: str, depth_m: np.ndarray) -> np.ndarray:
    """The HHA image of (corrupted) metric depth with the camera `prepare hha` recorded for frame `key`."""
    if key not in frames.cameras:
        raise DataFormatError(f"{frames.root / 'hha.json'}: no camera recorded for frame {key}")
    return encode_hha(hha(depth_m, CameraIntrinsics(*frames.cameras[key])))
