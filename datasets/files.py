"""Atomic file writes, the one implementation every writer of the project uses (data, metrics, specs, checkpoints).

The content goes to a temporary file in the same folder, is optionally fsynced, and is renamed over the target:
a kill at any moment leaves the old file or the new one, never half of one. A failed write removes its temporary.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def atomic_write(path: str | Path, data: str | bytes | Callable[[Path], None], *, fsync: bool = False) -> Path:
    """Write `data` (text, bytes, or a function that writes the given temporary path) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if isinstance(data, str):
            tmp.write_text(data)
        elif isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            data(tmp)
        if fsync:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
