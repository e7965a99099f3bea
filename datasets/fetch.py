"""Downloading the real datasets and the FID/KID Inception weights (`asymfusion fetch SOURCE`).

This module is the entry point: `fetch(SOURCE)` picks the data folder and dispatches to one fetcher per source
(NYUv2, Taskonomy and the Inception weights here; Cityscapes, which needs a login, in `cityscapes_fetch`). The
pieces they share live beside it:

* `asymfusion.datasets.sources` - the catalogue: every URL, size, checksum and pinned commit;
* `asymfusion.datasets.download` - the resumable, retrying HTTP `Range` downloader and `fetch_artifact`;
* `asymfusion.datasets.artifacts` - `Artifact`, `FetchError`, digests and the `SHA256SUMS` manifests.

Every file is verified (size, sha256, md5 where published) before it appears under its final name; a file
downloaded by other means is placed with `--from-file PATH` and verified the same way. See docs/data.md for every
URL, size, checksum and its provenance.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Sequence

from tqdm.auto import tqdm

from asymfusion.datasets.archive import extract_archive
from asymfusion.datasets.artifacts import (Artifact, FetchError, FetchInputError, file_digests, read_manifest,
                                          record_manifest)
from asymfusion.datasets.cityscapes_fetch import fetch_cityscapes
from asymfusion.datasets.download import FetchOptions, _quiet_pooch, fetch_artifact, place_artifact
from asymfusion.datasets.fetch_many import _fetch_all
from asymfusion.datasets.formats import TRANSLATION_DOMAINS, DataFormatError
from asymfusion.datasets.standins import MARKER as STAND_IN_MARKER
from asymfusion.datasets.sources import (
    CITYSCAPES_PACKAGES,
    INCEPTION_ARTIFACTS,
    NYU_ARTIFACTS,
    SOURCES,
    TASKONOMY_COMMIT_ENV,
    TASKONOMY_COMMITS,
    TASKONOMY_LIST_COUNTS,
    TASKONOMY_LISTS,
    TASKONOMY_REPO,
    TASKONOMY_URL,
)

__all__ = [
    "Artifact",
    "CITYSCAPES_PACKAGES",
    "FetchError",
    "FetchOptions",
    "SOURCES",
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

DATA_ENV = "ASYMFUSION_DATA"
TEMPLATE_RE = re.compile(r"^\{domain\}/point_(\d+)_view_(\d+)_domain_\{domain\}\.png$")


def default_data_dir() -> Path:
    """The data directory: $ASYMFUSION_DATA, else `data` (params.yaml `paths.data`)."""
    return Path(os.environ.get(DATA_ENV) or "data")


def source_dir(data_dir: str | Path, source: str) -> Path:
    """Where `fetch SOURCE` writes: `<data>/raw/<source>`, and `<data>/weights` for the Inception weights."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; allowed: {', '.join(SOURCES)}")
    data_dir = Path(data_dir)
    return data_dir / "weights" if source == "inception" else data_dir / "raw" / source


# ---------------------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------------------


def fetch_nyudv2(
    folder: str | Path, *, options: FetchOptions | None = None, from_files: Iterable[str | Path] = (),
    artifacts: Sequence[Artifact] | None = None,
) -> Path:
    """The labeled set (v7.3 .mat), the official split and the 894->40 class mapping into `folder`."""
    folder = Path(folder)
    _fetch_all(NYU_ARTIFACTS if artifacts is None else artifacts, folder, "nyudv2", options or FetchOptions(), from_files)
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
        raise FetchInputError(f"--from-file {path}: no such file or folder")
    extract_archive(path, scratch, force=True)
    children = [c for c in scratch.iterdir() if not c.name.startswith(".")]
    if len(children) == 1 and children[0].is_dir() and children[0].name not in TASKONOMY_COMMITS:
        return children[0]
    return scratch


def _raise_taskonomy_failures(failed: list[tuple[str, BaseException]], total: int, folder: Path) -> None:
    """One error for every file that failed, raised after every other file was placed, so a retry fetches only these.

    A failure that is not a fetch failure (Ctrl-C, a format error, a bug) is raised as it is."""
    other = [exc for _, exc in failed if not isinstance(exc, FetchError)]
    if other:
        raise other[0]
    if len(failed) == 1:
        raise failed[0][1]
    shown = "\n".join(f"  - {name}: {(str(exc).strip().splitlines() or [type(exc).__name__])[0]}"
                      for name, exc in sorted(failed, key=lambda f: f[0])[:10])
    more = f"\n  ... and {len(failed) - 10} more" if len(failed) > 10 else ""
    kind = FetchInputError if all(isinstance(exc, FetchInputError) for _, exc in failed) else FetchError
    raise kind(
        f"could not fetch {len(failed)} of {total} taskonomy file(s) into {folder}; the other {total - len(failed)} "
        f"were placed and verified:\n{shown}{more}\nRun the same command again to fetch only these (placed files "
        "are kept), or give a copy of the sample repository with --from-file."
    ) from failed[0][1]


def fetch_taskonomy(
    folder: str | Path,
    *,
    options: FetchOptions | None = None,
    from_files: Iterable[str | Path] = (),
    domains: Sequence[str] = TRANSLATION_DOMAINS,
    commit: str | None = None,
    url_template: str = TASKONOMY_URL,
    list_artifacts: Sequence[Artifact] | None = None,
    list_counts: dict[str, int] | None = None,
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
        raise FetchInputError(f"unknown Taskonomy domain(s) {unknown}; allowed: {', '.join(TASKONOMY_COMMITS)}")
    commit = commit or os.environ.get(TASKONOMY_COMMIT_ENV) or None
    if commit is not None and not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise FetchInputError(f"Taskonomy commit (--commit or ${TASKONOMY_COMMIT_ENV}) must be a full 40-hex git SHA, "
                              f"got {commit!r}")
    given = [Path(p).expanduser() for p in from_files]
    list_files = [p for p in given if p.is_file() and p.suffix == ".txt"]
    trees = [p for p in given if p not in list_files]
    if len(trees) > 1:
        raise FetchError("--from-file: give at most one folder or archive with the Taskonomy sample files")
    list_artifacts = TASKONOMY_LISTS if list_artifacts is None else list_artifacts  # (module globals: tests patch them)
    list_counts = TASKONOMY_LIST_COUNTS if list_counts is None else list_counts
    lists = _fetch_all(list_artifacts, folder, "taskonomy", options, list_files)
    templates: list[str] = []
    for path in lists:
        found = read_templates(path)
        want = list_counts.get(path.name)
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
        placed = place_artifact(artifact, folder, source="taskonomy", options=quiet, from_file=local, record=False)
        if placed.complete:  # never pin a file that may be truncated: it is downloaded again next time
            digest = placed.digest()
            with lock:
                recorded[artifact.name] = digest

    bar = tqdm(total=len(artifacts), unit="file", desc="taskonomy", disable=not options.progress)
    try:
        with _quiet_pooch(), ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
            futures = {pool.submit(one, a): a for a in artifacts}
            for future in futures:
                future.add_done_callback(lambda _f: bar.update(1))
            try:
                wait(futures)
            except BaseException:  # Ctrl-C: queued files are not started; what was placed is recorded below
                for f in futures:
                    f.cancel()
                raise
        failed = [(futures[f].name, f.exception()) for f in futures if f.exception() is not None]
        if failed:
            _raise_taskonomy_failures(failed, len(artifacts), folder)
    finally:
        bar.close()
        record_manifest(folder, recorded)
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return folder


# ---------------------------------------------------------------------------------------------------------------
# Dispatcher
# ---------------------------------------------------------------------------------------------------------------


def fetch(
    source: str,
    data_dir: str | Path | None = None,
    *,
    options: FetchOptions | None = None,
    from_files: Iterable[str | Path] = (),
    stand_in: str | Path | None = None,
    **kwargs,
) -> Path:
    """`asymfusion fetch SOURCE`: everything SOURCE needs into `source_dir(data_dir, SOURCE)`; returns that folder.

    `stand_in`: a folder written by `asymfusion standins SOURCE` (datasets/standins.py): its files are placed as
    --from-file copies, verified against the hashes it recorded (noise cannot match the published ones), and the
    source folder is marked STAND-IN.txt, which prepare carries into the layout and every result's protocol states.
    Stand-in and real files never share a folder."""
    folder = source_dir(data_dir if data_dir is not None else default_data_dir(), source)
    handlers = {
        "nyudv2": fetch_nyudv2,
        "cityscapes": fetch_cityscapes,
        "taskonomy": fetch_taskonomy,
        "inception": fetch_inception,
    }
    if stand_in is not None:
        from_files, extra = _stand_in_files(source, folder, Path(stand_in))
        kwargs.update(extra)
    elif (folder / STAND_IN_MARKER).is_file():
        raise FetchInputError(f"{folder} holds stand-in files ({STAND_IN_MARKER}): real data never goes beside them; "
                              "use another --data-dir, or remove that folder first")
    return handlers[source](folder, options=options, from_files=list(from_files), **kwargs)


def _stand_in_files(source: str, folder: Path, stand_in: Path) -> tuple[list[Path], dict]:
    from asymfusion.datasets.standins import mark_stand_in, read_standins

    try:
        info = read_standins(stand_in)
    except FileNotFoundError as exc:
        raise FetchInputError(f"--stand-in {stand_in}: {exc}") from None
    if info.get("source") != source:
        raise FetchInputError(f"--stand-in {stand_in}: these are stand-ins for {info.get('source')!r}, not {source!r}")
    if source == "inception":
        raise FetchInputError("--stand-in: the Inception weights have no stand-in (the rehearsal uses a stand-in "
                              "feature extractor instead)")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / STAND_IN_MARKER).is_file():
        raise FetchInputError(f"{folder} holds real files: stand-ins never go beside them; use another --data-dir")
    mark_stand_in(folder, f"{source} files placed by `asymfusion fetch {source} --stand-in {stand_in}`")
    hashes, provenance = info["sha256"], f"stand-in: sha256 recorded by `asymfusion standins` in {stand_in}"

    def own(artifacts: Sequence[Artifact]) -> list[Artifact]:
        return [replace(a, size=None, md5=None, sha256=hashes[a.name], provenance=provenance) for a in artifacts]

    extra: dict = {}
    if source == "nyudv2":
        extra["artifacts"] = own(NYU_ARTIFACTS)
    elif source == "taskonomy":
        extra.update(list_artifacts=own(TASKONOMY_LISTS), list_counts={})  # a few views, not CEN's counts
    return [stand_in / name for name in info["files"]], extra
