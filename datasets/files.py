"""Atomic file writes, the one implementation every writer of the project uses (data, metrics, specs, checkpoints).

The content goes to a temporary file in the same folder, is optionally fsynced, and is renamed over the target:
a kill at any moment leaves the old file or the new one, never half of one. A failed write removes its temporary;
a killed writer's temporary is removed by `remove_stale_temporaries` when the folder's owner next starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


TEMPORARY_SUFFIX = ".tmp"


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files `atomic_write` leaves behind when killed mid-write (`.<name>.<pid>.tmp`) in
    `folder` whose writer process is gone; returns what was removed."""
    removed = []
    for tmp in Path(folder).glob(f".*{TEMPORARY_SUFFIX}"):
        pid = tmp.name[: -len(TEMPORARY_SUFFIX)].rsplit(".", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write(path: str | Path, data: str | bytes | Callable[[Path], None], *, fsync: bool = False) -> Path:
    """Write `data` (text, bytes, or a function that writes the given temporary path) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TEMPORARY_SUFFIX}")
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
