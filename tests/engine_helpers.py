"""A micro suite for engine tests: tiny procedural data, a tiny backbone, a few steps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


def micro_params(tmp: Path, data_dir: Path, methods: list[str], *, epochs: int = 2, seeds: list[int] | None = None,
                 translation: bool = False, extra_train: dict[str, Any] | None = None,
                 modalities: list[str] | None = None, extra_data: dict[str, Any] | None = None) -> Path:
    """Write a params.yaml in `tmp` whose experiments `micro-<method>` train in seconds on CPU."""
    seg_data = {"dataset": "synth-seg", "modalities": modalities or ["rgb", "depth"], "batch_size": 4,
                "val_batch_size": 3, "train_transforms": {"scale": [0.8, 1.2], "crop": 32, "hflip": True}}
    trans_data = {"dataset": "synth-trans", "modalities": modalities or ["reshading", "depth_zbuffer"],
                  "target": "rgb", "batch_size": 4, "val_batch_size": 3, "train_transforms": {"hflip": True}}
    model = {"backbone": "resnet18", "backbone_kwargs": {"channels": [8, 16, 32, 64]}, "freeze_bn_stats": False,
             "decoder": {"width": 16}, "generator": {"base_channels": 8, "depth": 5},
             "discriminator": {"base_channels": 8, "downsampling": 2}}
    train = {"epochs": epochs, "device": "cpu", "threads": 1, "max_steps_per_epoch": 3, **(extra_train or {})}
    experiments = {}
    for method in methods:
        experiments[f"micro-{method}"] = {
            "suite": "micro",
            "data": {**(trans_data if translation else seg_data), **(extra_data or {})},
            "model": {**model, "method": method},
            "optimiser": ({"name": "adam", "lr_encoder": 2e-4, "lr_decoder": 2e-4, "schedule": "constant"}
                          if translation else {"name": "sgd", "lr_encoder": 0.01, "lr_decoder": 0.01}),
            "train": train,
            "evaluate": {"grid_samples": 2},
        }
    params = {
        "paths": {"data": str(data_dir), "checkpoints": str(tmp / "checkpoints")},
        "synthetic": {"size": 32, "n_train": 8, "n_val": 5, "views_per_scene": 2, "seed": 0},
        "datasets": {
            "synth-seg": {"source": "synthetic", "task": "segmentation", "root": "synthetic/segmentation",
                          "num_classes": 11},
            "synth-trans": {"source": "synthetic", "task": "translation", "root": "synthetic/translation"},
        },
        "suites": {"micro": {"seeds": seeds or [0], "results": str(tmp / "results")}},
        "experiments": experiments,
    }
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def cli(*args: str, params: Path | None = None, cwd: Path | None = None, check: bool = True,
        runner: list[str] | None = None) -> subprocess.CompletedProcess:
    argv = [*(runner or [sys.executable, "-m", "asymfusion.benchmark.cli"])]
    if params is not None:
        argv += ["--params", str(params)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*argv, *args], capture_output=True, text=True, cwd=cwd or REPO, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc
