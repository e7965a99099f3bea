"""Training FLOPs per sample of the paper suite's recipes, counted on the meta device (no weights, no data, no GPU):
torch's FlopCounterMode over one forward and backward of each experiment's model at its training crop, all inputs.
docs/paper-suite.md turns these into GPU time estimates with the step throughput measured on a GPU.

    .venv/bin/python scripts/paper-flops.py [EXPERIMENT ...]     # default: one experiment per dataset and task
"""

from __future__ import annotations

import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from asymfusion.benchmark.config import load_params, resolve_run
from asymfusion.models.build import build_model

DEFAULT = ["paper-nyudv2-msbn", "paper-cityscapes-msbn", "paper-shade-depth-msbn",
           "paper-depth-texture-normal-asymfusion"]


def train_gflop_per_sample(experiment: str) -> tuple[float, tuple[int, int], int]:
    cfg = resolve_run(load_params(), f"{experiment}-s0")
    crop = cfg.data.train_transforms.crop or cfg.data.train_transforms.resize
    size = (crop, crop) if isinstance(crop, int) else tuple(crop)
    with torch.device("meta"):
        model = build_model(cfg.model.model_copy(update={"pretrained": False}))
        inputs = {m: torch.randn(1, cfg.model.in_channels[m], *size) for m in cfg.data.modalities}
        counter = FlopCounterMode(display=False)
        with counter:
            outputs = model(inputs)
            sum(o.float().sum() for o in outputs.values()).backward()
    return counter.get_total_flops() / 1e9, size, cfg.data.batch_size


if __name__ == "__main__":
    print("| experiment | crop | train GFLOP per sample (forward + backward) | batch |")
    print("|---|---|---:|---:|")
    for name in sys.argv[1:] or DEFAULT:
        gflop, size, batch = train_gflop_per_sample(name)
        print(f"| {name} | {size[0]}x{size[1]} | {gflop:,.0f} | {batch} |")
