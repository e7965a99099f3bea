"""Tiny model configs shared by the model tests (timm test_resnet / slim resnet18, 32 px, batch 2)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from asymfusion.models import ModelConfig

CHANNELS = {"rgb": 3, "depth": 1, "normal": 3}
TWO_BLOCK_RESNET = {"backbone": "resnet18", "backbone_kwargs": {"channels": [16, 32, 64, 128]}}


def tiny_config(method: str, task: str = "segmentation", modalities: tuple[str, ...] = ("rgb", "depth"),
                **overrides: Any) -> ModelConfig:
    fields: dict[str, Any] = dict(
        method=method, task=task, modalities=list(modalities), in_channels={m: CHANNELS[m] for m in modalities},
        num_classes=5 if task == "segmentation" else None, out_channels=3 if task == "translation" else None,
        backbone="test_resnet", decoder={"width": 8}, generator={"base_channels": 4, "depth": 5},
        discriminator={"base_channels": 4}, freeze_bn_stats=False)
    fields.update(overrides)
    return ModelConfig(**fields)


def tiny_inputs(config: ModelConfig, size: int = 32, batch: int = 2, requires_grad: bool = False,
                seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, c, size, size, generator=generator).requires_grad_(requires_grad)
            for m, c in config.in_channels.items()}


@pytest.fixture(autouse=True)
def _seed_and_one_thread() -> Iterator[None]:
    """Seeded, single-threaded: tiny models gain nothing from threads and the CI box shares its 2 cores."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
