"""Evaluation metrics over every output of a model (each branch and the ensemble), built on torchmetrics.

torchmetrics keeps the states; under DDP `compute()` reduces them over all ranks, so every rank reports the same
numbers for the whole validation set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from asymfusion.benchmark.tasks import get_task
from asymfusion.benchmark.tasks.translation import to_unit

__all__ = ["OutputMetrics", "DistributionMetrics", "STANDIN_NOTE", "StandInFeatures", "inception_extractor",
           "not_computed", "to_uint8", "to_unit"]


class OutputMetrics(nn.Module):
    """One metric collection per model output key; `update(outputs, target)`, `compute() -> JSON-able dict`."""

    def __init__(self, task: str, keys: list[str], num_classes: int | None = None,
                 distribution: "DistributionMetrics | None" = None) -> None:
        super().__init__()
        self.task = get_task(task)
        self.collections = nn.ModuleDict({key: self.task.metrics(num_classes) for key in keys})
        self.distribution = distribution

    @torch.no_grad()
    def update(self, outputs: dict[str, torch.Tensor], target: torch.Tensor) -> None:
        for key, collection in self.collections.items():
            self.task.update_metrics(collection, outputs[key], target)
        if self.distribution is not None:
            self.distribution.update(outputs, target)

    def compute(self) -> dict[str, dict[str, Any]]:
        result = {key: self.task.metric_row(collection.compute()) for key, collection in self.collections.items()}
        if self.distribution is not None:
            for key, row in self.distribution.compute().items():
                result[key].update(row)
        return result


class DistributionMetrics(nn.Module):
    """FID and KID (x100, subsets as the CEN protocol) of each output against the real targets.

    `extractor` is any module mapping uint8 images [N, 3, H, W] to features [N, D] (with a `num_features`
    attribute); `inception_extractor` builds the standard one from a local weights file. KID's subset size is
    min(subset_size, number of samples), as CEN computes it.
    """

    def __init__(self, keys: list[str], extractor: nn.Module, n_samples: int, subsets: int = 50,
                 subset_size: int = 1000) -> None:
        super().__init__()
        size = max(2, min(subset_size, n_samples))
        self.fid = nn.ModuleDict({k: FrechetInceptionDistance(feature=extractor, normalize=False) for k in keys})
        self.kid = nn.ModuleDict(
            {k: KernelInceptionDistance(feature=extractor, subsets=subsets, subset_size=size, normalize=False)
             for k in keys}
        )

    @torch.no_grad()
    def update(self, outputs: dict[str, torch.Tensor], target: torch.Tensor) -> None:
        real = to_uint8(target)
        for key in self.fid:
            fake = to_uint8(outputs[key])
            for metric in (self.fid[key], self.kid[key]):
                metric.update(real, real=True)
                metric.update(fake, real=False)

    def compute(self) -> dict[str, dict[str, float]]:
        out = {}
        for key in self.fid:
            kid_mean, kid_std = self.kid[key].compute()
            out[key] = {"fid": float(self.fid[key].compute()), "kid_x100": 100.0 * float(kid_mean),
                        "kid_x100_std": 100.0 * float(kid_std)}
        return out


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    images = (to_unit(images) * 255.0).round().to(torch.uint8)
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def inception_extractor(weights: Path) -> nn.Module:
    """The FID Inception-v3 (torch-fidelity's port) loaded from a local file; nothing is downloaded."""
    from torchmetrics.image.fid import NoTrainInceptionV3

    return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                              feature_extractor_weights_path=str(weights))


class StandInFeatures(nn.Module):
    """FID/KID features for rehearsals, where the Inception weights are absent: a fixed random conv net (seed 0)
    mapping uint8 images [N, 3, H, W] to 64 pooled features. It exercises the FID/KID code path; its numbers
    compare with nothing (every result that uses it says so)."""

    num_features = 64

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.conv1 = nn.Conv2d(3, 32, 3, stride=2)
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2)
        with torch.no_grad():
            for conv in (self.conv1, self.conv2):
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.2)
                conv.bias.zero_()
        self.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(images.float() / 127.5 - 1.0))
        return torch.relu(self.conv2(x)).mean(dim=(2, 3)).double()


STANDIN_NOTE = "stand-in features (a fixed random conv net, benchmark/engine/metrics.py): not comparable to any FID"


def not_computed(reason: str) -> dict[str, Any]:
    return {"computed": False, "reason": reason}

