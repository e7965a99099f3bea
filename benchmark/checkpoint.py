"""Atomic checkpoints that resume a run exactly, and refuse to resume a different configuration.

A checkpoint holds the model, every optimiser and scheduler, the AMP scaler, every RNG state, the epoch, the best
metric, the per-epoch history and the params hash of the run. It is written to a temporary file in the same folder
and renamed into place, so a kill at any moment leaves either the old or the new file, never half of one. Loading
uses `torch.load(weights_only=True)`: a checkpoint can never execute code.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

LAST = "last.pt"
BEST = "best.pt"


class ResumeMismatch(RuntimeError):
    """The checkpoint on disk was written by a different configuration of this run."""


def save_atomic(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def find_resumable(directory: Path, params_hash: str, restart: bool) -> dict[str, Any] | None:
    """The last checkpoint of this run if it exists and matches `params_hash`.

    A mismatch raises `ResumeMismatch` unless `restart` is set; then the old folder is moved aside (never deleted)
    and training starts over.
    """
    last = directory / LAST
    if not last.exists():
        return None
    state = load(last)
    if state.get("params_hash") == params_hash:
        return None if restart and _move_aside(directory) else state
    if not restart:
        raise ResumeMismatch(
            f"{last} was written by a different configuration (params hash {state.get('params_hash')} != "
            f"{params_hash}); rerun with --restart to start over (the old checkpoints are kept under "
            f"{directory.name}.old-<time>)"
        )
    _move_aside(directory)
    return None


def _move_aside(directory: Path) -> bool:
    target = directory.with_name(f"{directory.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
    directory.rename(target)
    return True
