"""Damaged state: truncated, empty or foreign checkpoints are named with their fix, `--restart` recovers from
them, and a killed checkpoint write leaves no temporary file behind after the next start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asymfusion.benchmark.config import load_params, resolve_run
from asymfusion.benchmark.engine import checkpoint as ckpt
from asymfusion.benchmark.engine.evaluate import evaluate_run
from asymfusion.benchmark.engine.train import train_run
from asymfusion.benchmark.errors import DamagedCheckpoint, exit_code
from asymfusion.datasets.files import remove_stale_temporaries

from tests.engine_helpers import cli, micro_params


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "foreign":
        torch.save({"weights": torch.zeros(2)}, path)  # a valid torch file, but not one of our checkpoints
    else:
        raise AssertionError(how)


@pytest.fixture
def trained(tmp_path: Path, synthetic_data_dir: Path):
    params = micro_params(tmp_path, synthetic_data_dir, ["msbn"], epochs=1)
    cfg = resolve_run(load_params(params), "micro-msbn-s0")
    train_run(cfg, progress=False)
    return params, cfg


def test_the_command_line_names_a_damaged_checkpoint_and_restart_recovers(trained) -> None:
    params, cfg = trained
    last = cfg.checkpoint_dir / ckpt.LAST
    _damage(last, "truncated")
    proc = cli("train", cfg.run, "--no-progress", params=params, check=False)
    assert proc.returncode == 1, proc.stderr
    assert str(last) in proc.stderr and "damaged" in proc.stderr and "--restart" in proc.stderr
    assert "Traceback" not in proc.stderr
    damaged = last.read_bytes()
    cli("train", cfg.run, "--no-progress", "--restart", params=params)
    assert ckpt.load(last)["epoch"] == 1
    moved = list(cfg.checkpoint_dir.parent.glob(f"{cfg.run}.old-*/{ckpt.LAST}"))
    assert len(moved) == 1 and moved[0].read_bytes() == damaged, "the damaged file must be kept, not deleted"


@pytest.mark.parametrize("how", ["truncated", "empty", "foreign"])
def test_every_kind_of_damage_is_reported_and_restart_never_reads_the_file(trained, how: str) -> None:
    _, cfg = trained
    last = cfg.checkpoint_dir / ckpt.LAST
    _damage(last, how)
    with pytest.raises(DamagedCheckpoint, match=f"{last}: .*--restart"):
        train_run(cfg, progress=False)
    assert train_run(cfg, progress=False, restart=True)[-1]["epoch"] == 1
    assert ckpt.load(last)["epoch"] == 1


def test_dvc_stages_restart_from_a_damaged_checkpoint_without_asking(trained) -> None:
    _, cfg = trained
    _damage(cfg.checkpoint_dir / ckpt.LAST, "truncated")
    history = train_run(cfg, progress=False, on_change="restart")
    assert len(history) == 1
    assert list(cfg.checkpoint_dir.parent.glob(f"{cfg.run}.old-*/{ckpt.LAST}"))


def test_evaluating_a_damaged_best_checkpoint_names_it_and_both_ways_out(trained) -> None:
    _, cfg = trained
    best = cfg.checkpoint_dir / ckpt.BEST
    state = ckpt.load(best)
    ckpt.save_epoch(state | {"epoch": state["epoch"] + 1}, cfg.checkpoint_dir, improved=False)  # a later last.pt
    _damage(best, "truncated")
    with pytest.raises(DamagedCheckpoint) as err:
        evaluate_run(cfg)
    message = str(err.value)
    assert str(best) in message and "--restart" in message and "--checkpoint last" in message
    assert exit_code(err.value) == 1
    assert not (cfg.results_dir / "metrics" / f"{cfg.run}.json").exists()
    assert evaluate_run(cfg, checkpoint=ckpt.LAST)["checkpoint"]  # the other checkpoint still works


def test_a_damaged_best_that_is_also_the_last_offers_only_a_retrain(trained) -> None:
    _, cfg = trained  # one epoch: best.pt and last.pt are one file
    best = cfg.checkpoint_dir / ckpt.BEST
    _damage(best, "truncated")
    with pytest.raises(DamagedCheckpoint) as err:
        evaluate_run(cfg)
    message = str(err.value)
    assert "--restart" in message and "last.pt is the same file" in message and "--checkpoint last" not in message


def test_a_killed_checkpoint_write_leaves_no_temporary_after_the_next_start(trained) -> None:
    _, cfg = trained
    # a writer killed mid-write: its temporary stays, named after a process that no longer exists
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = cfg.checkpoint_dir / f".{ckpt.LAST}.{int(dead.stdout)}.tmp"
    stale.write_bytes(b"half a checkpoint")
    live = cfg.checkpoint_dir / f".{ckpt.BEST}.{os.getpid()}.tmp"  # a writer still running is left alone
    live.write_bytes(b"being written")
    train_run(cfg, progress=False)
    assert not stale.exists() and live.exists()
    live.unlink()


def test_only_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".x.json.999999999.tmp").write_text("stale")
    (tmp_path / f".y.json.{os.getpid()}.tmp").write_text("live")
    (tmp_path / ".notes.tmp").write_text("not ours: no pid")
    (tmp_path / "data.tmp").write_text("not hidden")
    removed = remove_stale_temporaries(tmp_path)
    assert [p.name for p in removed] == [".x.json.999999999.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".y.json.{os.getpid()}.tmp", ".notes.tmp", "data.tmp"])


class _Payload:
    """Unpickling this runs a shell command: what a hostile checkpoint would do under torch.load(weights_only=False)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_carrying_code_is_refused_and_the_code_never_runs(trained, tmp_path: Path) -> None:
    _, cfg = trained
    marker = tmp_path / "payload-ran"
    last = cfg.checkpoint_dir / ckpt.LAST
    torch.save({"model": {}, "epoch": 1, "payload": _Payload(marker)}, last)
    with pytest.raises(DamagedCheckpoint, match=str(last)):
        train_run(cfg, progress=False)
    assert not marker.exists()


def test_a_best_epoch_shares_one_file_with_last_and_keeps_its_weights_when_last_moves_on(tmp_path: Path) -> None:
    first, second = ({"model": {"w": torch.full((4,), float(e))}, "epoch": e} for e in (1, 2))
    ckpt.save_epoch(first, tmp_path, improved=True)
    last, best = tmp_path / ckpt.LAST, tmp_path / ckpt.BEST
    assert os.path.samefile(last, best), "a best epoch is written once"
    ckpt.save_epoch(second, tmp_path, improved=False)
    assert not os.path.samefile(last, best)
    assert ckpt.load(best)["epoch"] == 1 and ckpt.load(last)["epoch"] == 2
    assert torch.equal(ckpt.load(best)["model"]["w"], torch.full((4,), 1.0))
    ckpt.save_epoch(first | {"epoch": 3}, tmp_path, improved=True)
    assert os.path.samefile(last, best) and ckpt.load(best)["epoch"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.BEST, ckpt.LAST], "no temporary is left"


def test_without_hard_links_the_best_epoch_is_a_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*args: object) -> None:
        raise OSError("hard links not supported")

    monkeypatch.setattr(ckpt.os, "link", no_links)
    ckpt.save_epoch({"model": {"w": torch.ones(2)}, "epoch": 1}, tmp_path, improved=True)
    assert ckpt.load(tmp_path / ckpt.BEST)["epoch"] == 1
    assert not os.path.samefile(tmp_path / ckpt.LAST, tmp_path / ckpt.BEST)
