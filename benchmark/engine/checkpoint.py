"""Atomic checkpoints that resume a run exactly, and refuse to resume a different configuration.

A checkpoint holds the model, every optimiser and scheduler, the AMP scaler, every RNG state, the epoch, the best
metric, the per-epoch history and the params hash of the run. It is written to a temporary file in the same folder
and renamed into place, so a kill at any moment leaves either the old or the new file, never half of one. Loading
uses `torch.load(weights_only=True)`: a checkpoint can never execute code.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from asymfusion.benchmark.errors import DamagedCheckpoint, ResumeMismatch
from asymfusion.datasets.files import TEMPORARY_SUFFIX, atomic_write, remove_stale_temporaries

__all__ = ["DamagedCheckpoint", "ResumeMismatch", "find_resumable", "load", "save_atomic", "save_epoch"]

log = logging.getLogger("asymfusion.train")

LAST = "last.pt"
BEST = "best.pt"


def save_atomic(state: dict[str, Any], path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp), fsync=True)


def save_epoch(state: dict[str, Any], directory: Path, improved: bool) -> None:
    """Write `last.pt`; where the epoch is the best so far, `best.pt` is a hard link to the same file (one copy on
    disk: a paper checkpoint with its optimiser is up to 1 GB). Each save replaces the name, never the file, so a
    `best.pt` linked earlier keeps its epoch when `last.pt` moves on. A filesystem without hard links gets a copy."""
    last, best = directory / LAST, directory / BEST
    save_atomic(state, last)
    if not improved:
        return
    staged = best.with_name(f".{BEST}.{os.getpid()}{TEMPORARY_SUFFIX}")  # swept like save_atomic's after a kill
    staged.unlink(missing_ok=True)
    try:
        os.link(last, staged)
    except OSError:  # no hard links here (some network and FAT filesystems)
        save_atomic(state, best)
        return
    os.replace(staged, best)


def load(path: Path, fix: str = "rerun the training with --restart (it moves the damaged file aside)") -> dict[str, Any]:
    """The checkpoint at `path`; DamagedCheckpoint naming the file and `fix` when it cannot be read."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # truncated zip, empty file, foreign pickle: torch raises several types
        size = path.stat().st_size if path.exists() else 0
        raise DamagedCheckpoint(f"{path}: damaged checkpoint ({size} bytes; {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'}); {fix}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise DamagedCheckpoint(f"{path}: not a checkpoint of this project (no model state); {fix}")
    return state


OnChange = str  # "refuse" | "restart"


def find_resumable(directory: Path, params_hash: str, restart: bool, *, code_hash: str | None = None,
                   on_change: OnChange = "refuse") -> dict[str, Any] | None:
    """The last checkpoint of this run if it exists and may be resumed; None means train from scratch.

    `restart` moves any existing checkpoints aside. Otherwise a checkpoint written by a different configuration
    (`params_hash`) raises `ResumeMismatch` when `on_change` is "refuse" (the command line's default); with
    "restart" (what DVC stages use: they rerun because their inputs changed) the old folder is moved aside and
    training starts over. A checkpoint written by different code (`code_hash`, same configuration) restarts under
    "restart" too; under "refuse" it resumes with a warning. Old folders are never deleted.
    """
    last = directory / LAST
    remove_stale_temporaries(directory)  # left by a kill during a checkpoint write
    if not last.exists():
        return None
    if restart:  # before reading anything: --restart must work on a damaged checkpoint too
        _move_aside(directory, "--restart")
        return None
    try:
        state = load(last)
    except DamagedCheckpoint:
        if on_change != "restart":
            raise
        _move_aside(directory, f"{LAST} is damaged")
        return None
    if state.get("params_hash") != params_hash:
        if on_change != "restart":
            raise ResumeMismatch(
                f"{last} was written by a different configuration (params hash {state.get('params_hash')} != "
                f"{params_hash}); rerun with --restart to start over (the old checkpoints are kept under "
                f"{directory.name}.old-<time>)"
            )
        _move_aside(directory, f"configuration changed (params hash {state.get('params_hash')} -> {params_hash})")
        return None
    if code_hash is not None and state.get("code_hash") != code_hash:
        if on_change == "restart":
            _move_aside(directory, f"training code changed (code hash {state.get('code_hash')} -> {code_hash})")
            return None
        log.warning("%s was written by other training code (code hash %s != %s); resuming anyway", last,
                    state.get("code_hash"), code_hash)
    return state


def _move_aside(directory: Path, reason: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = directory.with_name(f"{directory.name}.old-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = directory.with_name(f"{directory.name}.old-{stamp}-{n}")
    directory.rename(target)
    log.info("%s: %s; moved the old checkpoints to %s and training from scratch", directory, reason, target)
    return target
