"""Downloading the real datasets and the FID/KID Inception weights (`asymfusion fetch SOURCE`).

Every download goes through `pooch.retrieve` with a custom, resumable downloader:

* the bytes stream into `<final name>.part` beside the final file, with a tqdm progress bar; an interrupted transfer
  (dropped connection, Ctrl-C, a crash) leaves that partial file behind and the next attempt asks the server for the
  rest with an HTTP `Range` header instead of starting over;
* network failures are retried with exponential backoff;
* the finished file is checked against its expected size and its sha256 (and md5 where one is published); on a
  mismatch the partial file is deleted and a `FetchError` names the URL, the expected and the actual values;
* only a verified file is handed to pooch, which checks its known hash once more and renames it into place, so a
  corrupt file never appears under its final name;
* the sha256 of every file placed is recorded in `SHA256SUMS` in its folder (for sources without published
  checksums, e.g. the Taskonomy sample, this manifest pins the files on first download and is checked afterwards).

A file downloaded by other means is placed with `--from-file PATH`: it is verified exactly like a download and
copied into place (the original is left untouched).

Cityscapes needs an account: its packages are downloaded through `cityscapesscripts` (which checks the md5 the server
publishes) after a non-interactive login with `CITYSCAPES_USERNAME` / `CITYSCAPES_PASSWORD` or cityscapesscripts'
own credentials file. See docs/data.md for every URL, size, checksum and its provenance.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import zipfile
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pooch
import requests
from tqdm.auto import tqdm

from asymfusion.datasets.archive import extract_archive
from asymfusion.datasets.formats import TRANSLATION_DOMAINS, DataFormatError

__all__ = [
    "Artifact",
    "CITYSCAPES_PACKAGES",
    "FetchError",
    "FetchOptions",
    "SOURCES",
    "cityscapes_credentials",
    "default_data_dir",
    "fetch",
    "fetch_artifact",
    "fetch_cityscapes",
    "fetch_inception",
    "fetch_nyudv2",
    "fetch_taskonomy",
    "file_digests",
    "read_manifest",
    "source_dir",
]

log = logging.getLogger(__name__)

DATA_ENV = "ASYMFUSION_DATA"
SOURCES = ("nyudv2", "cityscapes", "taskonomy", "inception")
MANIFEST = "SHA256SUMS"
PART_SUFFIX = ".part"


class FetchError(RuntimeError):
    """A download failed or a file did not verify; the message names the URL, the expected and the actual values,
    and how to place a manually downloaded file (`--from-file`)."""


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


@dataclass(frozen=True)
class FetchOptions:
    retries: int = 4  # attempts after the first one
    backoff: float = 1.0  # seconds before the first retry; doubles every retry
    max_backoff: float = 60.0
    timeout: float = 60.0  # seconds without data before an attempt fails
    progress: bool = True
    chunk_size: int = 1 << 16  # bytes per read; an interrupted read loses at most this much
    jobs: int = 8  # parallel downloads for many-file sources (Taskonomy)


# ---------------------------------------------------------------------------------------------------------------
# Known sources. Checksums are copied from /work/shared/DATA-SOURCES.md with their provenance; none is invented.
# ---------------------------------------------------------------------------------------------------------------

NYU_ARTIFACTS = (
    Artifact(
        "nyu_depth_v2_labeled.mat",
        "http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat",
        size=2_972_037_809,
        sha256="2d724b0c0ab358aa1ce5df855e5bd14a2279ab7202efe22f32a30d612dcb86aa",
        md5="520609c519fba3ba5ac58c8fefcc3530",
        provenance="size, md5 and sha256 as published by third parties (NYU publishes none); not re-hashed here",
    ),
    Artifact(
        "splits.mat",
        "http://horatio.cs.nyu.edu/mit/silberman/indoor_seg_sup/splits.mat",
        size=2_626,
        sha256="6e081404491a8bfba2f066beaa9713ef6046f9007aa5f799f2a350506a580cee",
        md5="08e3c3aea27130ac7c01ffd739a4535f",
        provenance="hashed from the byte-identical copy in ankurhanda/nyuv2-meta-data@b92d15c",
    ),
    Artifact(
        "classMapping40.mat",
        "https://raw.githubusercontent.com/ankurhanda/nyuv2-meta-data/b92d15c506876dada1ac4086938e30ebc4deb49b/"
        "classMapping40.mat",
        size=10_474,
        sha256="ff177194cce9a2163517f1e1e6f1c64c50987162f542dedddc04bbf6ebe6d851",
        md5="e377c88729dd63af81205ac9a8634a19",
        provenance="hashed at the pinned commit of ankurhanda/nyuv2-meta-data",
    ),
)

INCEPTION_ARTIFACTS = (
    Artifact(
        "weights-inception-2015-12-05-6726825d.pth",
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
        size=95_628_359,
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
        provenance="URL from torch-fidelity's code; size and sha256 as published by third parties",
    ),
)

CEN_COMMIT = "0088d87ab36dc25acf4a13a100071ad859f5af9c"
TASKONOMY_LISTS = (
    Artifact(
        "train_domain.txt",
        f"https://raw.githubusercontent.com/yikaiw/CEN/{CEN_COMMIT}/image2image_translation/data/train_domain.txt",
        size=46_326,
        sha256="62109abb3684fac44ae550fc0b33767cc6b98da2c52d51cbfb610edc9ee06191",
        md5="4b9370b5e62094a72ffa769dac6993a8",
        provenance="hashed at the pinned CEN commit",
    ),
    Artifact(
        "val_domain.txt",
        f"https://raw.githubusercontent.com/yikaiw/CEN/{CEN_COMMIT}/image2image_translation/data/val_domain.txt",
        size=23_158,
        sha256="ca62a0feb101c2116f1bed89cf81a9ad069f3ebb305cac376f55270cfc13de8d",
        md5="1c6fd6d565a43867b06ea19c29fd1458",
        provenance="hashed at the pinned CEN commit",
    ),
)
TASKONOMY_LIST_COUNTS = {"train_domain.txt": 1000, "val_domain.txt": 500}
TASKONOMY_REPO = "alexsax/taskonomy-sample-model-1"
TASKONOMY_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
TASKONOMY_COMMIT_ENV = "ASYMFUSION_TASKONOMY_COMMIT"
# The sample repository added each domain in its own commit. These are the commits a public code index records for
# each domain's files (every file there has a single version). They were looked up, not downloaded from: see
# docs/data.md. `--commit SHA` (or ASYMFUSION_TASKONOMY_COMMIT) replaces all of them with one commit.
TASKONOMY_COMMITS = {
    "rgb": "eed3233b1338f74b38af6d91b37cd9e03528d5e8",
    "normal": "3bfdb62b2c92ad78c2d6c65f242620f4fc61355f",
    "reshading": "aa81d967aacc195d7b21016d76ef16a057f2edfc",
    "depth_euclidean": "ea3c027a90c92fc4a3b3cdf3d32e2d2957e2c975",
    "depth_zbuffer": "ccddd0cda68a632b26308f80c941ee642c333eea",
    "edge_texture": "9086bb2555ac28e5eb6d3114d19339146a8666ad",
    "edge_occlusion": "64e4be8066b3293faf61c5cab7d254eecc3f0aed",
    "principal_curvature": "33548f2e2b21d4c685c85ac09277fb317ffbbb79",
}
TEMPLATE_RE = re.compile(r"^\{domain\}/point_(\d+)_view_(\d+)_domain_\{domain\}\.png$")

CITYSCAPES_URL = "https://www.cityscapes-dataset.com"
CITYSCAPES_PACKAGES = (
    "gtFine_trainvaltest.zip",
    "leftImg8bit_trainvaltest.zip",
    "disparity_trainvaltest.zip",
    "camera_trainvaltest.zip",
)
CITYSCAPES_USER_ENV = "CITYSCAPES_USERNAME"
CITYSCAPES_PASSWORD_ENV = "CITYSCAPES_PASSWORD"


# ---------------------------------------------------------------------------------------------------------------
# Folders, hashes, manifests
# ---------------------------------------------------------------------------------------------------------------


def default_data_dir() -> Path:
    """The data directory: $ASYMFUSION_DATA, else `data` (params.yaml `paths.data`)."""
    return Path(os.environ.get(DATA_ENV) or "data")


def source_dir(data_dir: str | Path, source: str) -> Path:
    """Where `fetch SOURCE` writes: `<data>/raw/<source>`, and `<data>/weights` for the Inception weights."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; allowed: {', '.join(SOURCES)}")
    data_dir = Path(data_dir)
    return data_dir / "weights" if source == "inception" else data_dir / "raw" / source


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
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (MANIFEST + ".tmp")
        tmp.write_text("".join(f"{merged[k]}  {k}\n" for k in sorted(merged)))
        tmp.replace(folder / MANIFEST)


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

    On success the verified bytes are renamed onto pooch's temporary output file; `sha256` holds their hash.
    """

    artifact: Artifact
    part: Path
    source: str
    options: FetchOptions = field(default_factory=FetchOptions)
    sha256: str | None = None

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
                self._attempt(url)
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
        os.replace(self.part, output_file)
        return None

    def _attempt(self, url: str) -> None:
        expected = self.artifact.size
        offset = self.part.stat().st_size if self.part.exists() else 0
        if expected is not None and offset > expected:
            self.part.unlink()
            offset = 0
        if expected is not None and offset == expected:
            return  # complete already; verified by the caller
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
            total = offset + int(length) if length is not None else expected
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


def _content_range_start(value: str) -> int | None:
    match = re.match(r"bytes\s+(\d+)-", value.strip())
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

    An existing file that verifies is kept as it is. The sha256 of the file is recorded in `folder/SHA256SUMS`
    unless `record` is false (the caller then records it).
    """
    options = options or FetchOptions()
    folder = Path(folder)
    final = folder / artifact.name
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
    except ValueError as exc:  # pooch's own hash check (only reachable if a file changed under our feet)
        raise FetchError(f"{artifact.url}: {exc}\n{_hint(source, artifact)}") from exc
    if record:
        sha256 = downloader.sha256 or artifact.sha256 or file_digests(path)[1]
        record_manifest(folder, {artifact.name: sha256})
    return path


def _assign_from_files(
    artifacts: Sequence[Artifact], from_files: Iterable[str | Path], source: str
) -> dict[str, Path]:
    """Match `--from-file` paths to artifacts: by file name, else by exact size."""
    out: dict[str, Path] = {}
    for raw in from_files:
        path = Path(raw).expanduser()
        if not path.is_file():
            raise FetchError(f"--from-file {path}: no such file")
        match = [a for a in artifacts if a.basename == path.name]
        if not match:
            size = path.stat().st_size
            match = [a for a in artifacts if a.size == size]
        if len(match) != 1:
            names = ", ".join(a.basename for a in artifacts)
            raise FetchError(f"--from-file {path}: cannot tell which {source} file it is; expected one of: {names}")
        out[match[0].name] = path
    return out


def _fetch_all(
    artifacts: Sequence[Artifact], folder: Path, source: str, options: FetchOptions, from_files: Iterable[str | Path]
) -> list[Path]:
    assigned = _assign_from_files(artifacts, from_files, source)
    return [
        fetch_artifact(a, folder, source=source, options=options, from_file=assigned.get(a.name)) for a in artifacts
    ]


# ---------------------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------------------


def fetch_nyudv2(
    folder: str | Path, *, options: FetchOptions | None = None, from_files: Iterable[str | Path] = ()
) -> Path:
    """The labeled set (v7.3 .mat), the official split and the 894->40 class mapping into `folder`."""
    folder = Path(folder)
    _fetch_all(NYU_ARTIFACTS, folder, "nyudv2", options or FetchOptions(), from_files)
    return folder


def fetch_inception(
    folder: str | Path, *, options: FetchOptions | None = None, from_files: Iterable[str | Path] = ()
) -> Path:
    """torch-fidelity's FID/KID Inception weights into `folder`."""
    folder = Path(folder)
    _fetch_all(INCEPTION_ARTIFACTS, folder, "inception", options or FetchOptions(), from_files)
    return folder


def read_templates(path: str | Path) -> list[str]:
    """A CEN translation list: one `{domain}/point_P_view_V_domain_{domain}.png` template per line."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"translation list not found: {path}")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if not TEMPLATE_RE.match(line):
            raise DataFormatError(
                f"{path}:{n}: expected '{{domain}}/point_P_view_V_domain_{{domain}}.png', got {line!r}"
            )
        out.append(line)
    if not out:
        raise DataFormatError(f"translation list is empty: {path}")
    return out


def taskonomy_artifacts(
    templates: Iterable[str],
    domains: Sequence[str],
    manifest: dict[str, str],
    commit: str | None = None,
    url_template: str = TASKONOMY_URL,
) -> list[Artifact]:
    """One Artifact per (template, domain) from the pinned sample repository; hashes from an earlier manifest."""
    templates = list(templates)
    out = []
    for domain in domains:
        pin = commit or TASKONOMY_COMMITS[domain]
        for template in templates:
            name = template.format(domain=domain)
            url = url_template.format(repo=TASKONOMY_REPO, commit=pin, path=name)
            out.append(Artifact(name, url, sha256=manifest.get(name), provenance="sha256 recorded on first download"))
    return out


def _local_taskonomy_tree(path: Path, scratch: Path) -> Path:
    """A folder holding `<domain>/...` files: `path` itself, or an archive of it safely extracted to `scratch`."""
    if path.is_dir():
        return path
    if not path.is_file():
        raise FetchError(f"--from-file {path}: no such file or folder")
    extract_archive(path, scratch, force=True)
    children = [c for c in scratch.iterdir() if not c.name.startswith(".")]
    if len(children) == 1 and children[0].is_dir() and children[0].name not in TASKONOMY_COMMITS:
        return children[0]
    return scratch


def fetch_taskonomy(
    folder: str | Path,
    *,
    options: FetchOptions | None = None,
    from_files: Iterable[str | Path] = (),
    domains: Sequence[str] = TRANSLATION_DOMAINS,
    commit: str | None = None,
    url_template: str = TASKONOMY_URL,
) -> Path:
    """CEN's train/val lists and, per file, the listed viewpoints of every domain from the pinned sample repository.

    `from_files` may name the two list files and/or one folder (or tar/zip archive) holding a copy of the sample
    repository (`<domain>/point_*_domain_<domain>.png`); files found there are verified against the manifest
    where one exists and copied instead of downloaded.
    """
    options = options or FetchOptions()
    folder = Path(folder)
    unknown = [d for d in domains if d not in TASKONOMY_COMMITS]
    if unknown:
        raise FetchError(f"unknown Taskonomy domain(s) {unknown}; allowed: {', '.join(TASKONOMY_COMMITS)}")
    commit = commit or os.environ.get(TASKONOMY_COMMIT_ENV) or None
    if commit is not None and not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise FetchError(f"Taskonomy commit must be a full 40-hex git SHA, got {commit!r}")
    given = [Path(p).expanduser() for p in from_files]
    list_files = [p for p in given if p.is_file() and p.suffix == ".txt"]
    trees = [p for p in given if p not in list_files]
    if len(trees) > 1:
        raise FetchError("--from-file: give at most one folder or archive with the Taskonomy sample files")
    lists = _fetch_all(TASKONOMY_LISTS, folder, "taskonomy", options, list_files)
    templates: list[str] = []
    for path in lists:
        found = read_templates(path)
        want = TASKONOMY_LIST_COUNTS.get(path.name)
        if want is not None and len(found) != want:
            raise DataFormatError(f"{path}: expected {want} viewpoints, found {len(found)}")
        templates.extend(found)
    manifest = read_manifest(folder)
    artifacts = taskonomy_artifacts(templates, domains, manifest, commit, url_template)
    scratch = folder / ".from-file.tmp"
    tree = _local_taskonomy_tree(trees[0], scratch) if trees else None
    quiet = replace(options, progress=False)
    recorded: dict[str, str] = {}
    lock = threading.Lock()

    def one(artifact: Artifact) -> None:
        local = tree / artifact.name if tree is not None and (tree / artifact.name).is_file() else None
        path = fetch_artifact(artifact, folder, source="taskonomy", options=quiet, from_file=local, record=False)
        digest = artifact.sha256 or file_digests(path)[1]
        with lock:
            recorded[artifact.name] = digest

    bar = tqdm(total=len(artifacts), unit="file", desc="taskonomy", disable=not options.progress)
    try:
        with _quiet_pooch(), ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
            futures = {pool.submit(one, a) for a in artifacts}
            for future in futures:
                future.add_done_callback(lambda _f: bar.update(1))
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            for f in done:
                if f.exception() is not None:
                    raise f.exception()  # type: ignore[misc]
    finally:
        bar.close()
        record_manifest(folder, recorded)
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return folder


# ---------------------------------------------------------------------------------------------------------------
# Cityscapes (login-gated; cityscapesscripts does the transfer and its md5 check)
# ---------------------------------------------------------------------------------------------------------------


def cityscapes_credentials_file() -> Path:
    """cityscapesscripts' own credentials file (`csDownload` offers to store one there)."""
    try:
        import appdirs  # a dependency of cityscapesscripts

        base = Path(appdirs.user_data_dir("cityscapesscripts", "cityscapes"))
    except ImportError:  # pragma: no cover - the Linux location appdirs would give
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "cityscapesscripts"
    return base / "credentials.json"


def cityscapes_credentials() -> tuple[str, str]:
    """(username, password) from the environment, else cityscapesscripts' credentials file; never prompts."""
    user, password = os.environ.get(CITYSCAPES_USER_ENV), os.environ.get(CITYSCAPES_PASSWORD_ENV)
    if user and password:
        return user, password
    if user or password:
        missing = CITYSCAPES_PASSWORD_ENV if user else CITYSCAPES_USER_ENV
        raise FetchError(f"Cityscapes credentials: {missing} is not set (set both, or neither to use the file)")
    path = cityscapes_credentials_file()
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            return str(data["username"]), str(data["password"])
        except (ValueError, KeyError, TypeError) as exc:
            raise FetchError(f"Cityscapes credentials file {path} is unreadable: {exc}") from exc
    raise FetchError(
        "Cityscapes needs an account (register at https://www.cityscapes-dataset.com/register/ and accept its "
        "terms).\n"
        f"Set {CITYSCAPES_USER_ENV} and {CITYSCAPES_PASSWORD_ENV}, or store {path} as "
        '{"username": ..., "password": ...} (mode 0600). No prompt is shown (this may run without a terminal).\n'
        "Or download the packages in a browser and place each with:\n"
        "    asymfusion fetch cityscapes --from-file PATH/<package>.zip"
    )


class _Rebase(requests.adapters.HTTPAdapter):
    """Send requests for `src` to `dst` instead (a mirror, or the loopback server of the tests)."""

    def __init__(self, src: str, dst: str) -> None:
        super().__init__()
        self.src, self.dst = src.rstrip("/"), dst.rstrip("/")

    def send(self, request, **kwargs):  # type: ignore[override]
        if request.url.startswith(self.src):
            request.url = self.dst + request.url[len(self.src) :]
        return super().send(request, **kwargs)


def cityscapes_login(username: str, password: str, *, base_url: str = CITYSCAPES_URL, timeout: float = 60.0):
    """A logged-in `requests.Session` (the same form post as cityscapesscripts, without its prompts)."""
    session = requests.Session()
    if base_url.rstrip("/") != CITYSCAPES_URL:
        session.mount(CITYSCAPES_URL, _Rebase(CITYSCAPES_URL, base_url))
    login = f"{CITYSCAPES_URL}/login"
    try:
        session.get(login, allow_redirects=False, timeout=timeout).raise_for_status()
        response = session.post(
            login,
            data={"username": username, "password": password, "submit": "Login"},
            allow_redirects=False,
            timeout=timeout,
        )
        response.raise_for_status()
    except requests.RequestException as exc:
        raise FetchError(
            f"could not reach {login} to log in: {exc}\n"
            "If this machine is offline, download the packages elsewhere and place each with:\n"
            "    asymfusion fetch cityscapes --from-file PATH/<package>.zip"
        ) from exc
    if response.status_code != 302:
        raise FetchError(f"Cityscapes login at {login} failed (HTTP {response.status_code}, not a redirect): "
                         f"check {CITYSCAPES_USER_ENV} / {CITYSCAPES_PASSWORD_ENV} or {cityscapes_credentials_file()}")
    return session


def _check_zip(path: Path, package: str) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        raise FetchError(f"--from-file {path}: not a readable zip archive for {package}: {exc}") from exc
    if bad is not None:
        raise FetchError(f"--from-file {path}: member {bad!r} fails its CRC check; the archive is corrupt")


def _place_copy(src: Path, final: Path) -> None:
    tmp = final.with_name(final.name + ".copy" + PART_SUFFIX)
    shutil.copyfile(src, tmp)
    os.replace(tmp, final)


def fetch_cityscapes(
    folder: str | Path,
    *,
    options: FetchOptions | None = None,
    from_files: Iterable[str | Path] = (),
    packages: Sequence[str] = CITYSCAPES_PACKAGES,
    extract: bool = True,
    base_url: str = CITYSCAPES_URL,
) -> Path:
    """Download (or place) the Cityscapes packages into `folder` and extract them safely there."""
    options = options or FetchOptions()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    given: dict[str, Path] = {}
    for raw in from_files:
        path = Path(raw).expanduser()
        if not path.is_file():
            raise FetchError(f"--from-file {path}: no such file")
        if path.name not in packages:
            raise FetchError(f"--from-file {path}: expected one of the packages {', '.join(packages)} (by file name)")
        given[path.name] = path
    recorded: dict[str, str] = {}
    manifest = read_manifest(folder)
    for package, path in given.items():
        _check_zip(path, package)  # every member's CRC: the server's md5 is only available after a login
        _place_copy(path, folder / package)
        recorded[package] = file_digests(folder / package)[1]
    todo = [p for p in packages if p not in given and not ((folder / p).is_file() and p in manifest)]
    if todo:
        username, password = cityscapes_credentials()
        try:
            from cityscapesscripts.download import downloader as csdownloader
        except ImportError as exc:
            raise FetchError(
                "Cityscapes downloads need the cityscapesscripts package: pip install cityscapesscripts"
            ) from exc
        session = cityscapes_login(username, password, base_url=base_url, timeout=options.timeout)
        try:
            available = {p["name"]: p for p in csdownloader.get_available_packages(session=session)}
        except (requests.RequestException, ValueError) as exc:
            listing = f"{CITYSCAPES_URL}/downloads/?list"
            raise FetchError(f"could not list the Cityscapes packages at {listing}: {exc}") from exc
        missing = [p for p in todo if p not in available]
        if missing:
            raise FetchError(
                f"Cityscapes packages {missing} do not exist or this account has no access to them. "
                "The disparity packages are granted on request: ask the Cityscapes team, then run again."
            )
        staging = folder / ".partial"
        staging.mkdir(exist_ok=True)
        for package in todo:
            recorded[package] = _download_cityscapes_package(
                csdownloader, session, package, available[package]["packageID"], staging, folder, options
            )
        shutil.rmtree(staging, ignore_errors=True)
    record_manifest(folder, recorded)
    if extract:
        for package in packages:
            extract_archive(folder / package, folder)
    return folder


def _download_cityscapes_package(csdownloader, session, package, package_id, staging, folder, options) -> str:
    url = f"{CITYSCAPES_URL}/file-handling/?packageID={package_id}"
    staged = staging / package
    errors: list[str] = []
    for attempt in range(options.retries + 1):
        if attempt:
            _sleep(min(options.backoff * 2 ** (attempt - 1), options.max_backoff))
        try:
            csdownloader.download_packages(
                session=session, package_names=[package], destination_path=str(staging), resume=staged.exists()
            )
            break
        except requests.RequestException as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # cityscapesscripts raises a bare Exception on an md5 mismatch
            if "MD5" not in str(exc):
                raise FetchError(f"Cityscapes download of {package} ({url}) failed: {exc}") from exc
            expected = session.get(f"{CITYSCAPES_URL}/md5-sum/?packageID={package_id}", timeout=options.timeout)
            size, _, md5 = file_digests(staged) if staged.exists() else (0, "", "")
            staged.unlink(missing_ok=True)
            raise FetchError(
                f"downloaded Cityscapes package does not verify: {url}\n"
                f"  md5: expected {expected.text.split()[0] if expected.ok and expected.text.split() else '?'}, "
                f"got {md5} ({size:,} bytes)\n"
                f"  The file was deleted and nothing was placed under {package}. To use a copy downloaded in a "
                f"browser:\n    asymfusion fetch cityscapes --from-file PATH/{package}"
            ) from exc
    else:
        kept = staged.stat().st_size if staged.exists() else 0
        raise FetchError(
            f"could not download {url} ({package})\n  after {options.retries + 1} attempt(s); last error: "
            f"{errors[-1]}\n  {kept:,} bytes are kept in {staged}; the next run resumes from there.\n"
            f"To use a copy downloaded in a browser:\n    asymfusion fetch cityscapes --from-file PATH/{package}"
        )
    sha256 = file_digests(staged)[1]
    os.replace(staged, folder / package)
    return sha256


# ---------------------------------------------------------------------------------------------------------------
# Dispatcher
# ---------------------------------------------------------------------------------------------------------------


def fetch(
    source: str,
    data_dir: str | Path | None = None,
    *,
    options: FetchOptions | None = None,
    from_files: Iterable[str | Path] = (),
    **kwargs,
) -> Path:
    """`asymfusion fetch SOURCE`: everything SOURCE needs into `source_dir(data_dir, SOURCE)`; returns that folder."""
    folder = source_dir(data_dir if data_dir is not None else default_data_dir(), source)
    handlers = {
        "nyudv2": fetch_nyudv2,
        "cityscapes": fetch_cityscapes,
        "taskonomy": fetch_taskonomy,
        "inception": fetch_inception,
    }
    return handlers[source](folder, options=options, from_files=list(from_files), **kwargs)
