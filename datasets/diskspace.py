"""Free-disk checks before a fetch or an extraction writes anything (`ensure_free_space`, `DiskSpaceError`).

A full disk found hours into a 3 GB download leaves a partial file and a confusing OSError; comparing the free space
of the target's file system with the bytes about to be written, up front, reports it with both numbers instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from asymfusion.datasets.artifacts import FetchError

__all__ = ["DiskSpaceError", "ensure_free_space"]


class DiskSpaceError(FetchError):
    """Not enough free disk for what a fetch or an extraction is about to write: a runtime failure, exit 1."""


def ensure_free_space(folder: str | Path, need: int, what: str) -> None:
    """Refuse to start writing `need` bytes under `folder` when its file system has less free space than that.

    `folder` need not exist yet (its nearest existing parent is measured). Sizes that are not known are not
    counted by the callers, so this can only under-estimate."""
    if need <= 0:
        return
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise DiskSpaceError(
            f"not enough free disk for {what}: it needs {need:,} bytes under {folder}, but only {free:,} bytes are "
            "free there. Free some space or point --data-dir (or $ASYMFUSION_DATA) at a larger disk; nothing was "
            "written."
        )
