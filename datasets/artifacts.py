"""What a remote file must be, and the check that it is: `Artifact`, `FetchError`, digests and `SHA256SUMS`.

Shared by every fetch path (the resumable downloader, `--from-file`, the Cityscapes login flow) and by the
`prepare` steps, which read the manifests that fetching wrote. It knows nothing about HTTP: a file is checked
against its expected size, sha256 and md5 here, wherever its bytes came from. The sha256 of every file placed is
recorded in `SHA256SUMS` in its folder (sha256sum-compatible), which pins files of sources that publish no
checksums on first download.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from asymfusion.datasets.formats import DataFormatError
from asymfusion.datasets.files import atomic_write

__all__ = ["Artifact", "FetchError", "MANIFEST", "file_digests", "read_manifest", "record_manifest"]

MANIFEST = "SHA256SUMS"


class FetchError(RuntimeError):
    """A download failed or a file did not verify; the message names the URL, the expected and the actual values,
    and how to place a manually downloaded file (`--from-file`)."""


class FetchInputError(FetchError):
    """What the user asked for cannot be fetched as given (a missing --from-file, an unknown domain, a malformed
    commit): bad input, exit 2."""

    exit_code = 2


@dataclass(frozen=True)
class Artifact:
    """One remote file: where it goes (relative to its source folder), where it comes from, what it must be."""

    name: str
    url: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    provenance: str = ""

    @property
    def basename(self) -> str:
        return self.name.rsplit("/", 1)[-1]


def file_digests(path: str | Path, chunk_size: int = 1 << 20) -> tuple[int, str, str]:
    """(size in bytes, sha256 hex, md5 hex) of a file, in one pass."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest(), md5.hexdigest()


def read_manifest(folder: str | Path) -> dict[str, str]:
    """`SHA256SUMS` of a folder as {relative path: sha256} (empty when absent)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {}
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        if not re.fullmatch(r"[0-9a-f]{64}", digest) or not name:
            raise DataFormatError(f"{path}:{n}: expected '<sha256>  <path>', got {line!r}")
        out[name] = digest
    return out


_manifest_lock = threading.Lock()


def record_manifest(folder: str | Path, entries: dict[str, str]) -> None:
    """Merge {relative path: sha256} into the folder's `SHA256SUMS` (sorted, sha256sum-compatible), atomically."""
    if not entries:
        return
    folder = Path(folder)
    with _manifest_lock:
        merged = {**read_manifest(folder), **entries}
        atomic_write(folder / MANIFEST, "".join(f"{merged[k]}  {k}\n" for k in sorted(merged)))


def _fmt_size(n: int | None) -> str:
    return "unknown size" if n is None else f"{n:,} bytes"


def _expected(artifact: Artifact) -> str:
    parts = [_fmt_size(artifact.size)]
    if artifact.sha256:
        parts.append(f"sha256 {artifact.sha256}")
    if artifact.md5:
        parts.append(f"md5 {artifact.md5}")
    if not artifact.sha256 and not artifact.md5:
        parts.append("no published checksum (the computed sha256 is recorded in SHA256SUMS)")
    return ", ".join(parts)


def _hint(source: str, artifact: Artifact) -> str:
    return (
        f"To use a copy obtained another way, place it with:\n"
        f"    asymfusion fetch {source} --from-file PATH/{artifact.basename}\n"
        f"(it is verified like a download)."
    )


def _mismatches(artifact: Artifact, size: int, sha256: str, md5: str) -> list[str]:
    out = []
    if artifact.size is not None and size != artifact.size:
        out.append(f"size: expected {artifact.size:,} bytes, got {size:,}")
    if artifact.sha256 and sha256 != artifact.sha256:
        out.append(f"sha256: expected {artifact.sha256}, got {sha256}")
    if artifact.md5 and md5 != artifact.md5:
        out.append(f"md5: expected {artifact.md5}, got {md5}")
    return out
