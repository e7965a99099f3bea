"""Scale-out on the real engines (docs/scale-out.md): Optuna on a PostgreSQL server shared by two "machines", a DVC
remote that a second clone pulls from without retraining, and two-node torchrun (c10d rendezvous, gloo)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from tests.engine_helpers import REPO, cli, micro_params
from tests.pg_helpers import missing_reason, postgres_server
from tests.test_tune import LAUNCHER, tune, tune_params


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    from asymfusion.benchmark.tune.storage import storage_location

    return optuna.load_study(study_name="micro-asymfusion", storage=storage_location(url, Path("."))).get_trials()


def test_a_postgresql_url_picks_an_installed_driver_and_its_password_never_shows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from asymfusion.benchmark.config import ConfigError
    from asymfusion.benchmark.tune.storage import shown, storage_location

    url = "postgresql://optuna:SECRET@db.example.org:5432/asymfusion"
    real = importlib.util.find_spec
    only = lambda present: (lambda name, *a: real(name, *a) if name in present or name not in
                            ("psycopg", "psycopg2") else None)
    monkeypatch.setattr(importlib.util, "find_spec", only({"psycopg"}))
    assert storage_location(url, Path(".")) == "postgresql+psycopg://optuna:SECRET@db.example.org:5432/asymfusion"
    monkeypatch.setattr(importlib.util, "find_spec", only(set()))
    with pytest.raises(ConfigError, match=r"no PostgreSQL driver.*psycopg\[binary\]") as error:
        storage_location(url, Path("."))
    assert "SECRET" not in str(error.value)
    assert shown("postgresql+psycopg://optuna:SECRET@db/x") == "postgresql+psycopg://optuna:***@db/x"
    assert shown("results/study.journal") == "results/study.journal"


needs_postgres = pytest.mark.skipif(missing_reason() is not None, reason=missing_reason() or "")


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@needs_postgres
def test_the_postgresql_gate_lock_excludes_a_worker_on_another_connection(postgres_url: str) -> None:
    from sqlalchemy import create_engine

    from asymfusion.benchmark.tune.storage import AdvisoryLock, storage_location

    url = storage_location(postgres_url, Path("."))
    first, second = (AdvisoryLock(create_engine(url), "a-study") for _ in range(2))
    other_study = AdvisoryLock(create_engine(url), "another-study")
    first.acquire()
    waiter = threading.Thread(target=second.acquire)
    waiter.start()
    waiter.join(timeout=1.0)
    assert waiter.is_alive(), "a second machine must wait while the first holds the study's gate"
    other_study.acquire()  # another study's gate is independent
    other_study.release()
    first.release()
    waiter.join(timeout=10)
    assert not waiter.is_alive()
    second.release()


@pytest.mark.slow
@pytest.mark.timeout(600)
@needs_postgres
def test_two_machines_tune_one_postgresql_study_and_a_killed_one_loses_no_trial(tmp_path: Path, postgres_url: str,
                                                                                synthetic_data_dir: Path) -> None:
    trials = 4
    # A long grace period: under load a live worker's heartbeats can lag by seconds, and a 2-s grace would fail its
    # trials; the killed worker's trial is failed at once anyway (same host, its process is gone).
    # Learning rates below 0.02: the micro model diverges above about 0.1 (a FAIL each, and 4 stop a worker).
    lr = {"type": "float", "low": 1.0e-6, "high": 0.02, "log": True}
    space = {"optimiser.lr_encoder": lr, "optimiser.lr_decoder": lr,
             "model.fusion.stages": {"type": "categorical", "choices": [[1, 2, 3, 4], [3, 4]]}}
    params = tune_params(tmp_path, synthetic_data_dir, epochs=4, trials=trials, pruner={"name": "none"},
                         heartbeat={"interval": 1, "grace_period": 60}, space=space)
    url = postgres_url.replace("postgres@", "postgres:SECRET@")  # trust authentication ignores it; so must outputs
    # Each "machine" runs the README's command with its own output folder: only the database orders them.
    procs, logs = [], []
    for machine in ("a", "b"):
        log = tmp_path / f"machine-{machine}.log"
        logs.append(log)
        argv = [*LAUNCHER, *tune(params, "--storage", url, "--out", str(tmp_path / f"machine-{machine}"))]
        procs.append(subprocess.Popen(argv, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                      env={**os.environ, "OMP_NUM_THREADS": "1"}))
    victim, survivor = procs
    completed_before: dict[int, float] = {}
    deadline = time.time() + 300
    while time.time() < deadline and survivor.poll() is None and victim.poll() is None:
        time.sleep(0.3)
        try:
            seen = _trials(url)
        except KeyError:  # the study is not created yet
            continue
        running = [t for t in seen if t.state == TrialState.RUNNING and t.user_attrs.get("worker_pid") == victim.pid]
        completed_before = {t.number: t.value for t in seen if t.state == TrialState.COMPLETE}
        if running and completed_before:
            break
    assert victim.poll() is None and completed_before, "\n".join(p.read_text() for p in logs)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert survivor.wait(timeout=400) == 0, logs[1].read_text()
    final = _trials(url)

    complete = {t.number: t.value for t in final if t.state == TrialState.COMPLETE}
    assert len(complete) == trials, [(t.number, t.state) for t in final]
    assert all(complete.get(n) == v for n, v in completed_before.items()), "a completed trial was lost or changed"
    # A sampled learning rate may diverge (NonFiniteLoss: a FAIL with an `error` attribute, not counted toward N);
    # the kill is the one FAIL without an error, and it carries the victim's pid.
    killed = [t for t in final if t.state == TrialState.FAIL and "error" not in t.user_attrs]
    assert [t.user_attrs["worker_pid"] for t in killed] == [victim.pid], [
        (t.number, t.state, t.user_attrs, t.system_attrs) for t in final]
    assert not [t for t in final if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert "4 of 4 trials finished" in logs[1].read_text()
    exported = yaml.safe_load((tmp_path / "machine-b" / "best_params.yaml").read_text())
    assert exported["finished_trials"] == trials and exported["storage"].endswith("/postgres")
    assert "SECRET" not in exported["storage"] and "SECRET" not in logs[1].read_text()



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_nodes_joined_by_c10d_rendezvous_train_what_one_node_with_two_processes_trains(
        tmp_path: Path, synthetic_data_dir: Path) -> None:
    for name in ("one-node", "two-nodes"):
        (tmp_path / name).mkdir()
    one = micro_params(tmp_path / "one-node", synthetic_data_dir, ["asymfusion"], epochs=2)
    standalone = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                  "-m", "asymfusion.benchmark.cli"]
    cli("train", "micro-asymfusion-s0", "--no-progress", params=one, runner=standalone)

    two = micro_params(tmp_path / "two-nodes", synthetic_data_dir, ["asymfusion"], epochs=2)
    endpoint = f"127.0.0.1:{_free_port()}"
    nodes = []
    for _ in range(2):  # docs/scale-out.md: the same command on each machine; the rendezvous assigns the ranks
        argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
                "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}",
                "--rdzv-id=asymfusion-test", "-m", "asymfusion.benchmark.cli", "--params", str(two),
                "train", "micro-asymfusion-s0", "--no-progress"]
        nodes.append(subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env={**os.environ, "OMP_NUM_THREADS": "1"}))
    outputs = [node.communicate(timeout=400)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(o[-3000:] for o in outputs)

    from asymfusion.benchmark.engine import checkpoint as ckpt

    state = {name: ckpt.load(root / "checkpoints" / "micro" / "micro-asymfusion-s0" / "last.pt")
             for name, root in (("one", tmp_path / "one-node"), ("two", tmp_path / "two-nodes"))}
    assert state["one"]["epoch"] == state["two"]["epoch"] == 2
    for key, value in state["one"]["model"].items():
        assert torch.equal(value, state["two"]["model"][key]), f"{key} differs between one node and two"
    strip = lambda h: [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in h]
    assert strip(state["one"]["history"]) == strip(state["two"]["history"])
