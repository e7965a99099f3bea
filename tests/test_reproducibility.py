"""A seeded run is a pure function of its configuration: two fresh processes (different hash seeds, so no set or
dict order can leak in) train bit-identical weights, for both tasks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.engine_helpers import REPO, micro_params


def _train_in_fresh_process(params: Path, run: str, hash_seed: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run([sys.executable, "-m", "asymfusion.benchmark.cli", "--params", str(params), "train", run,
                           "--no-progress"], capture_output=True, text=True, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr


def _tensors(state: object, prefix: str = "") -> dict[str, torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return {prefix: state}
    if isinstance(state, dict):
        return {k: v for key, value in state.items() for k, v in _tensors(value, f"{prefix}.{key}").items()}
    if isinstance(state, (list, tuple)):
        return {k: v for i, value in enumerate(state) for k, v in _tensors(value, f"{prefix}[{i}]").items()}
    return {}


@pytest.mark.parametrize("translation", [False, True], ids=["segmentation", "translation"])
def test_two_fresh_processes_train_bit_identical_weights(translation: bool, tmp_path: Path,
                                                         synthetic_data_dir: Path) -> None:
    states = []
    for name, hash_seed in (("a", "1"), ("b", "2")):
        (tmp_path / name).mkdir()
        params = micro_params(tmp_path / name, synthetic_data_dir, ["msbn"], epochs=1, translation=translation)
        _train_in_fresh_process(params, "micro-msbn-s0", hash_seed)
        states.append(torch.load(tmp_path / name / "checkpoints" / "micro" / "micro-msbn-s0" / "last.pt",
                                 weights_only=True))
    a, b = states
    keys = ["model", "optimiser"] + (["discriminator", "d_optimiser"] if translation else [])
    for key in keys:
        ta, tb = _tensors(a[key]), _tensors(b[key])
        assert ta.keys() == tb.keys() and ta, key
        different = [k for k in ta if not torch.equal(ta[k], tb[k])]
        assert not different, f"{key}: {different[:5]}"
    losses = [[row["train_loss"] for row in s["history"]] for s in states]
    assert losses[0] == losses[1]
