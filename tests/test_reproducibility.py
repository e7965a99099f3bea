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


def test_parallel_workers_train_the_same_weights_as_one_process(tmp_path: Path, synthetic_data_dir: Path) -> None:
    """`train EXP --jobs 2` (forkserver workers, what the DVC stages run) equals training the seeds one by one."""
    runs = ["micro-msbn-s0", "micro-msbn-s1"]
    states = {}
    for name, jobs in (("serial", "1"), ("parallel", "2")):
        (tmp_path / name).mkdir()
        params = micro_params(tmp_path / name, synthetic_data_dir, ["msbn"], epochs=1, seeds=[0, 1])
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run([sys.executable, "-m", "asymfusion.benchmark.cli", "--params", str(params), "train",
                               "micro-msbn", "--jobs", jobs, "--no-progress"], capture_output=True, text=True,
                              cwd=REPO, env=env)
        assert proc.returncode == 0, proc.stderr
        assert all(f"{run}: trained 1 epochs" in proc.stdout for run in runs), proc.stdout
        states[name] = {run: torch.load(tmp_path / name / "checkpoints" / "micro" / run / "last.pt", weights_only=True)
                        for run in runs}
    for run in runs:
        a, b = _tensors(states["serial"][run]["model"]), _tensors(states["parallel"][run]["model"])
        assert a and a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), run
    # the two seeds differ (each worker trains its own run, not a copy of one)
    w0, w1 = (_tensors(states["parallel"][run]["model"]) for run in runs)
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)


# The cheapest flagship runs of the committed quick suite, one per task: their first epoch (the schedule of the
# full recipe, stopped after the epoch's checkpoint) must give the committed history's numbers exactly.
COMMITTED_RUNS = ["quick-asymfusion-s0", "quick-t2-asymfusion-s0"]
_FIRST_EPOCHS = """
import sys
from asymfusion.benchmark.config import load_params, resolve_run
from asymfusion.benchmark.engine.train import train_run

class FirstEpochDone(Exception):
    pass

def stop(row):
    raise FirstEpochDone

params = load_params(sys.argv[1])
for run in sys.argv[2:]:
    try:
        train_run(resolve_run(params, run), progress=False, on_epoch_end=stop)
    except FirstEpochDone:
        pass
"""


def _committed_reference(run: str) -> tuple[dict, dict]:
    import json

    metrics = json.loads((REPO / "results" / "quick" / "metrics" / f"{run}.json").read_text())
    history = json.loads((REPO / "results" / "quick" / "history" / f"{run}.json").read_text())
    return metrics, history[0]


def test_a_fresh_process_reproduces_the_committed_quick_results(tmp_path: Path) -> None:
    """What a fresh-clone `make quick` computes, checked on one epoch of one run per task (a test of all of
    results/quick would take the quick suite's time). Bit-for-bit equality holds between machines whose CPU kernels
    are the same: the same torch, instruction set and CPU model (oneDNN picks kernels per ISA and per
    microarchitecture: an AVX-512 Intel Xeon and an AVX-512 AMD EPYC differ in the translation loss's 5th digit)."""
    import yaml

    from asymfusion.datasets.synthetic import render_dataset
    from asymfusion.benchmark.engine.runtime import cpu_model

    here = (torch.__version__, torch.backends.cpu.get_cpu_capability(), cpu_model())
    for run in COMMITTED_RUNS:
        env = _committed_reference(run)[0]["environment"]
        then = (env.get("torch"), env.get("cpu_capability"), env.get("cpu"))
        if then != here:
            pytest.skip(f"results/quick/metrics/{run}.json was computed with torch {then[0]} on a {then[1]} "
                        f"{then[2]}; this is torch {here[0]} on a {here[1]} {here[2]}: the last digits differ by "
                        f"design")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["paths"] = {"data": str(tmp_path / "data"), "checkpoints": str(tmp_path / "checkpoints")}
    params["suites"]["quick"]["results"] = str(tmp_path / "results")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    render_dataset(tmp_path / "data" / "synthetic", **params["synthetic"], workers=2, progress=False)

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _FIRST_EPOCHS, str(tmp_path / "params.yaml"), *COMMITTED_RUNS],
                          capture_output=True, text=True, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr
    import json

    for run in COMMITTED_RUNS:
        fresh = json.loads((tmp_path / "results" / "history" / f"{run}.json").read_text())
        assert len(fresh) == 1, run
        committed = _committed_reference(run)[1]
        numbers = [k for k in committed if k not in ("seconds", "images_per_s")]
        assert {k: fresh[0][k] for k in numbers} == {k: committed[k] for k in numbers}, run
