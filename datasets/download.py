"""The resumable downloader behind every plain-HTTP fetch, and `fetch_artifact` (one verified file into place).

Every download goes through `pooch.retrieve` with a custom downloader from here:

* the bytes stream into `<final name>.part` beside the final file, with a tqdm progress bar; an interrupted transfer
  (dropped connection, Ctrl-C, a crash) leaves that partial file behind and the next attempt asks the server for the
  rest with an HTTP `Range` header instead of starting over;
* network failures are retried with exponential backoff;
* the finished file is checked against its expected size and its sha256 (and md5 where one is published); on a
  mismatch the partial file is deleted and a `FetchError` names the URL, the expected and the actual values;
* only a verified file is handed to pooch, which checks its known hash once more and renames it into place, so a
  corrupt file never appears under its final name;
* the sha256 of every file placed is recorded in `SHA256SUMS` in its folder - but only of a file whose completeness
  was established: by a published size or checksum, or by the server's Content-Length (or Content-Range total)
  matching the bytes received. A file with neither (the server sent no length and nothing is published) is kept
  but not recorded, with a warning, and the next fetch downloads it again instead of pinning a possibly truncated
  file on first use.

A file downloaded by other means is placed with `--from-file PATH` (`LocalFileDownloader`): it is verified exactly
like a download and copied into place (the original is left untouched); the user vouches for its completeness, so
its sha256 is recorded even where nothing is published. The per-source fetchers in
`asymfusion.datasets.fetch`, `asymfusion.datasets.fetch_many` and `asymfusion.datasets.cityscapes_fetch` build on
this module.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import pooch
import requests
from tqdm.auto import tqdm

from asymfusion.datasets.artifacts import (
    MANIFEST,
    Artifact,
    FetchError,
    _expected,
    _hint,
    _mismatches,
    file_digests,
    read_manifest,
    record_manifest,
)

__all__ = ["FetchOptions", "LocalFileDownloader", "Placed", "ResumableDownloader", "fetch_artifact", "place_artifact"]

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"
ASIDE_SUFFIX = ".unverified"  # an unverifiable earlier copy, kept aside while it is downloaded again


@dataclass(frozen=True)
class FetchOptions:
    retries: int = 4  # attempts after the first one
    backoff: float = 1.0  # seconds before the first retry; doubles every retry
    max_backoff: float = 60.0
    timeout: float = 60.0  # seconds without data before an attempt fails
    progress: bool = True
    chunk_size: int = 1 << 16  # bytes per read; an interrupted read loses at most this much
    jobs: int = 8  # parallel downloads for many-file sources (Taskonomy)


_quiet_lock = threading.Lock()
_quiet_state = {"depth": 0, "level": logging.NOTSET}


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Silence pooch's per-file INFO lines (we draw our own progress); re-entrant and thread-safe."""
    logger = pooch.get_logger()
    with _quiet_lock:
        if _quiet_state["depth"] == 0:
            _quiet_state["level"] = logger.level
            logger.setLevel(logging.WARNING)
        _quiet_state["depth"] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_state["depth"] -= 1
            if _quiet_state["depth"] == 0:
                logger.setLevel(_quiet_state["level"])


# ---------------------------------------------------------------------------------------------------------------
# Downloaders (pooch's callable interface: downloader(url, output_file, pooch, check_only=False))
# ---------------------------------------------------------------------------------------------------------------


def _sleep(seconds: float) -> None:
    """The pause between retries (a seam for the tests)."""
    time.sleep(seconds)


class _Retry(Exception):
    """A transient failure: try again after a pause."""


_local = threading.local()


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        session.headers["User-Agent"] = "asymfusion-bench-fetch (+pooch)"
        # Byte ranges and sizes refer to the stored bytes: never let a server compress them in transit.
        session.headers["Accept-Encoding"] = "identity"
    return session


@dataclass
class ResumableDownloader:
    """Stream `url` into `part` with Range resume, retries with backoff, and size/hash verification.

    On success the verified bytes are renamed onto pooch's temporary output file; `sha256` holds their hash and
    `complete` whether their completeness was established (a published size or checksum, or the server's
    Content-Length / Content-Range total equal to the bytes received); it stays None until a download ran.
    """

    artifact: Artifact
    part: Path
    source: str
    options: FetchOptions = field(default_factory=FetchOptions)
    sha256: str | None = None
    complete: bool | None = None

    def __call__(self, url: str, output_file: str, pooch_obj: object = None, check_only: bool = False) -> bool | None:
        if check_only:
            try:
                return _session().head(url, timeout=self.options.timeout, allow_redirects=True).status_code == 200
            except requests.RequestException:
                return False
        self.part.parent.mkdir(parents=True, exist_ok=True)
        errors: list[str] = []
        attempts = self.options.retries + 1
        for attempt in range(attempts):
            if attempt:
                delay = min(self.options.backoff * 2 ** (attempt - 1), self.options.max_backoff)
                log.warning("retrying %s in %.1f s (%s)", url, delay, errors[-1])
                _sleep(delay)
            try:
                announced_ok = self._attempt(url)
                break
            except _Retry as exc:
                errors.append(str(exc))
            except requests.RequestException as exc:  # refused, reset, timeout, truncated stream
                errors.append(f"{type(exc).__name__}: {exc}")
        else:
            kept = self.part.stat().st_size if self.part.exists() else 0
            resume = (
                f"\n  {kept:,} bytes are kept in {self.part}; the next run resumes from there." if kept else ""
            )
            raise FetchError(
                f"could not download {url}\n"
                f"  after {attempts} attempt(s); last error: {errors[-1]}\n"
                f"  expected: {_expected(self.artifact)}{resume}\n"
                f"If this machine is offline or the server is unreachable, download the file elsewhere.\n"
                f"{_hint(self.source, self.artifact)}"
            )
        size, sha256, md5 = file_digests(self.part)
        problems = _mismatches(self.artifact, size, sha256, md5)
        if problems:
            self.part.unlink()
            raise FetchError(
                f"downloaded file does not verify: {url}\n  " + "\n  ".join(problems) + "\n"
                f"  The file was deleted and nothing was placed under {self.artifact.name}. If the published value "
                f"is wrong or the server changed the file, check it by hand.\n{_hint(self.source, self.artifact)}"
            )
        self.sha256 = sha256
        self.complete = _verifiable(self.artifact) or announced_ok
        os.replace(self.part, output_file)
        return None

    def _attempt(self, url: str) -> bool:
        """One request; returns whether the server announced a total length equal to what the file now holds."""
        expected = self.artifact.size
        offset = self.part.stat().st_size if self.part.exists() else 0
        if expected is not None and offset > expected:
            self.part.unlink()
            offset = 0
        if expected is not None and offset == expected:
            return False  # complete already (by the published size); verified by the caller
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with _session().get(url, headers=headers, stream=True, timeout=self.options.timeout) as response:
            status = response.status_code
            if status == 416:  # the partial file does not fit the remote one: start over
                self.part.unlink(missing_ok=True)
                raise _Retry(f"HTTP 416 for a resumed download from byte {offset}; restarting from 0")
            if status in (408, 425, 429) or status >= 500:
                raise _Retry(f"HTTP {status} {response.reason}")
            if status >= 400:
                raise FetchError(
                    f"could not download {url}: HTTP {status} {response.reason}\n"
                    f"  expected: {_expected(self.artifact)}\n{_hint(self.source, self.artifact)}"
                )
            if offset and status == 206:
                start = _content_range_start(response.headers.get("Content-Range", ""))
                if start != offset:
                    self.part.unlink(missing_ok=True)
                    raise _Retry(f"server resumed at byte {start}, not {offset}; restarting from 0")
            elif offset:  # 200: the server ignored the Range header and sends everything
                offset = 0
            length = response.headers.get("Content-Length")
            announced = {offset + int(length)} if length is not None else set()
            if status == 206:
                announced |= {t for t in [_content_range_total(response.headers.get("Content-Range", ""))] if t}
            total = max(announced) if announced else expected
            with open(self.part, "ab" if offset else "wb") as handle, tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=self.artifact.basename,
                disable=not self.options.progress,
                leave=False,
            ) as bar:
                for chunk in response.iter_content(chunk_size=self.options.chunk_size):
                    handle.write(chunk)
                    bar.update(len(chunk))
        got = self.part.stat().st_size
        if total is not None and got < total:
            raise _Retry(f"connection closed after {got:,} of {total:,} bytes")
        return bool(announced) and announced == {got}


def _verifiable(artifact: Artifact) -> bool:
    """Whether a published size or checksum can tell a complete file from a truncated one."""
    return artifact.size is not None or bool(artifact.sha256) or bool(artifact.md5)


def _content_range_start(value: str) -> int | None:
    match = re.match(r"bytes\s+(\d+)-", value.strip())
    return int(match.group(1)) if match else None


def _content_range_total(value: str) -> int | None:
    match = re.match(r"bytes\s+\d+-\d+/(\d+)\s*$", value.strip())
    return int(match.group(1)) if match else None


@dataclass
class LocalFileDownloader:
    """`--from-file`: verify a local file like a download, then copy it onto pooch's temporary output file."""

    artifact: Artifact
    path: Path
    source: str
    sha256: str | None = None

    def verify(self) -> str:
        """Check the local file against the artifact (once); returns its sha256 or raises FetchError."""
        if self.sha256 is not None:
            return self.sha256
        url = self.artifact.url
        if not self.path.is_file():
            raise FetchError(f"--from-file {self.path}: no such file (expected {self.artifact.basename} from {url})")
        size, sha256, md5 = file_digests(self.path)
        problems = _mismatches(self.artifact, size, sha256, md5)
        if problems:
            raise FetchError(
                f"--from-file {self.path} does not match {self.artifact.basename} ({url}):\n  "
                + "\n  ".join(problems)
                + f"\n  Nothing was placed under {self.artifact.name}; use an intact copy of {url}."
            )
        self.sha256 = sha256
        return sha256

    def __call__(self, url: str, output_file: str, pooch_obj: object = None, check_only: bool = False) -> bool | None:
        if check_only:
            return self.path.is_file()
        self.verify()
        shutil.copyfile(self.path, output_file)
        return None


# ---------------------------------------------------------------------------------------------------------------
# One file
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placed:
    """A file `place_artifact` put (or found) in place."""

    path: Path
    complete: bool  # completeness established: published size/checksum, server's length, or --from-file
    sha256: str | None = None  # where known without reading the file again

    def digest(self) -> str:
        return self.sha256 or file_digests(self.path)[1]


def fetch_artifact(
    artifact: Artifact,
    folder: str | Path,
    *,
    source: str,
    options: FetchOptions | None = None,
    from_file: str | Path | None = None,
    record: bool = True,
) -> Path:
    """Download (or place, with `from_file`) one artifact into `folder/artifact.name`, verified; return its path.

    See `place_artifact`, which also says whether the file's completeness was established.
    """
    return place_artifact(artifact, folder, source=source, options=options, from_file=from_file, record=record).path


def place_artifact(
    artifact: Artifact,
    folder: str | Path,
    *,
    source: str,
    options: FetchOptions | None = None,
    from_file: str | Path | None = None,
    record: bool = True,
) -> Placed:
    """Download (or place, with `from_file`) one artifact into `folder/artifact.name`, verified.

    An existing file that verifies is kept as it is. The sha256 of the file is recorded in `folder/SHA256SUMS`
    unless `record` is false (the caller then records it, and passes a recorded sha256 in `artifact`) or the
    file's completeness could not be established (`Placed.complete` is false; a warning says so). With nothing
    published, a sha256 recorded earlier is the file's pin; a file present but neither verifiable nor recorded is
    downloaded again (the earlier copy is put back if that fails).
    """
    options = options or FetchOptions()
    folder = Path(folder)
    final = folder / artifact.name
    aside = final.with_name(final.name + ASIDE_SUFFIX)
    _put_back(aside, final)  # left by a run killed while it downloaded an unverifiable file again
    aside.unlink(missing_ok=True)
    if record and not _verifiable(artifact):
        pinned = read_manifest(folder).get(artifact.name)
        if pinned:
            artifact = replace(artifact, sha256=pinned)
    if artifact.size is not None and final.is_file() and final.stat().st_size != artifact.size:
        log.warning("%s has %d bytes, expected %d: fetching it again", final, final.stat().st_size, artifact.size)
        final.unlink()
    known_hash = f"sha256:{artifact.sha256}" if artifact.sha256 else f"md5:{artifact.md5}" if artifact.md5 else None
    downloader: ResumableDownloader | LocalFileDownloader
    if from_file is not None:  # verified first, even where a verified file is already in place (then kept)
        downloader = LocalFileDownloader(artifact, Path(from_file).expanduser(), source)
        downloader.verify()
    else:
        downloader = ResumableDownloader(artifact, final.with_name(final.name + PART_SUFFIX), source, options)
    final.parent.mkdir(parents=True, exist_ok=True)
    if not _verifiable(artifact) and final.is_file():
        log.warning("%s is present but nothing can verify it (no published size or checksum, no sha256 in %s): "
                    "fetching it again", final, MANIFEST)
        os.replace(final, aside)
    try:
        with _quiet_pooch():
            path = Path(
                pooch.retrieve(
                    artifact.url,
                    known_hash=known_hash,
                    fname=artifact.name,
                    path=folder,
                    downloader=downloader,
                    progressbar=False,
                )
            )
    except BaseException as exc:
        _put_back(aside, final)
        if isinstance(exc, ValueError):  # pooch's own hash check (only reachable if a file changed under our feet)
            raise FetchError(f"{artifact.url}: {exc}\n{_hint(source, artifact)}") from exc
        raise
    aside.unlink(missing_ok=True)
    complete = getattr(downloader, "complete", None) is not False  # None: kept as verified; --from-file: True
    placed = Placed(path, complete, downloader.sha256 or artifact.sha256)
    if not complete:
        log.warning("%s (%s): the server sent no Content-Length and no size or checksum is published, so its "
                    "completeness cannot be checked: not recorded in %s; the next fetch downloads it again",
                    path, artifact.url, MANIFEST)
    elif record:
        record_manifest(folder, {artifact.name: placed.digest()})
    return placed


def _put_back(aside: Path, final: Path) -> None:
    if aside.is_file() and not final.exists():
        os.replace(aside, final)
