"""Safe extraction of downloaded archives (zip and tar, any compression tarfile understands).

Every member is checked before anything is written: absolute paths, `..` components, members reached through a
symbolic link of the same archive, links whose target lies outside the extraction folder, and device or FIFO
entries are refused with an `UnsafeArchiveError` naming the archive, the member and the reason. Extraction then goes
to a staging folder beside the target and is merged into place only once it has completed, so an interrupted
extraction never leaves a half-written tree under the final names.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from asymfusion.datasets.formats import DataFormatError

__all__ = ["UnsafeArchiveError", "check_archive", "extract_archive", "archive_members"]


class UnsafeArchiveError(DataFormatError):
    """An archive member would be written (or would point) outside the extraction folder."""


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or (len(name) >= 2 and name[1] == ":" and name[0].isalpha())


def _normalise(name: str) -> PurePosixPath:
    return PurePosixPath(name.replace("\\", "/"))


def _problem_with_path(name: str) -> str | None:
    if not name:
        return "empty member name"
    if _is_absolute(name):
        return "absolute path"
    if ".." in _normalise(name).parts:
        return "'..' path component"
    return None


def _escapes(base: PurePosixPath, target: str) -> bool:
    """Whether `target` (relative to folder `base` inside the archive root) leaves the root."""
    if _is_absolute(target):
        return True
    depth = len(base.parts)
    for part in _normalise(target).parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in (".", ""):
            depth += 1
    return False


def _through_links(base: PurePosixPath, target: str, links: set[PurePosixPath]) -> bool:
    """Whether resolving `target` from folder `base` (lexically) passes through one of the archive's symlinks."""
    parts = list(base.parts)
    for part in _normalise(target).parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part not in (".", ""):
            parts.append(part)
            if PurePosixPath(*parts) in links:
                return True
    return False


def _tar_problems(archive: Path, tar: tarfile.TarFile) -> list[str]:
    problems: list[str] = []
    links: set[PurePosixPath] = set()
    for member in tar.getmembers():
        name = member.name
        problem = _problem_with_path(name)
        path = _normalise(name)
        if problem is None and any(parent in links for parent in path.parents):
            problem = "reached through a symbolic link of the same archive"
        if problem is None and member.issym():
            if _escapes(path.parent, member.linkname):
                problem = f"symbolic link to {member.linkname!r} points outside the target folder"
            elif _through_links(path.parent, member.linkname, links):
                problem = f"symbolic link to {member.linkname!r} goes through another symbolic link"
            links.add(path)
        if problem is None and member.islnk():
            target = _normalise(member.linkname)
            if _is_absolute(member.linkname) or _escapes(PurePosixPath(), member.linkname):
                problem = f"hard link to {member.linkname!r} points outside the target folder"
            elif target in links or any(parent in links for parent in target.parents):
                problem = f"hard link to {member.linkname!r} goes through a symbolic link"
        if problem is None and (member.ischr() or member.isblk() or member.isfifo()):
            problem = "device or FIFO entry"
        if problem is not None:
            problems.append(f"{archive}: member {name!r}: {problem}")
    return problems


def _zip_problems(archive: Path, zf: zipfile.ZipFile) -> list[str]:
    problems: list[str] = []
    for info in zf.infolist():
        name = info.filename
        problem = _problem_with_path(name)
        mode = info.external_attr >> 16
        if problem is None and stat.S_ISLNK(mode):
            target = zf.read(info).decode("utf-8", "replace")
            if _escapes(_normalise(name).parent, target):
                problem = f"symbolic link to {target!r} points outside the target folder"
        if problem is not None:
            problems.append(f"{archive}: member {name!r}: {problem}")
    return problems


def _open(archive: Path):
    if not archive.is_file():
        raise DataFormatError(f"archive not found: {archive}")
    if zipfile.is_zipfile(archive):
        return zipfile.ZipFile(archive)
    try:
        return tarfile.open(archive)
    except tarfile.TarError as exc:
        raise DataFormatError(f"{archive}: not a zip or tar archive ({exc})") from exc


def check_archive(archive: str | Path) -> list[str]:
    """Member names of a safe archive; raises UnsafeArchiveError listing every unsafe member otherwise."""
    archive = Path(archive)
    with _open(archive) as handle:
        if isinstance(handle, zipfile.ZipFile):
            problems = _zip_problems(archive, handle)
            names = handle.namelist()
        else:
            problems = _tar_problems(archive, handle)
            names = handle.getnames()
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise UnsafeArchiveError(f"refusing to extract unsafe archive {archive}:\n  {shown}{more}")
    return names


archive_members = check_archive


def _merge_tree(src: Path, dst: Path) -> None:
    """Move the contents of `src` into `dst`, replacing files and merging folders."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir() and not target.is_symlink():
            _merge_tree(entry, target)
        else:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)


_FILTER_ERROR: type[Exception] = getattr(tarfile, "FilterError", type("_NoFilterError", (Exception,), {}))


def _marker(dest: Path, archive: Path) -> Path:
    return dest / f".{archive.name}.extracted"


def _stamp(archive: Path) -> str:
    st = archive.stat()
    return f"{archive.name} {st.st_size} {int(st.st_mtime)}\n"


def extract_archive(archive: str | Path, dest: str | Path, *, force: bool = False) -> Path:
    """Check `archive`, extract it into `dest` (via a staging folder) and return `dest`.

    A marker file `dest/.<archive name>.extracted` records the archive's size and mtime; a later call with the same
    archive returns at once unless `force`.
    """
    archive = Path(archive)
    dest = Path(dest)
    marker = _marker(dest, archive)
    if not force and marker.is_file() and marker.read_text() == _stamp(archive):
        return dest
    check_archive(archive)
    dest.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha256(str(archive.resolve()).encode()).hexdigest()[:8]
    staging = dest / f".extract-{tag}.tmp"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        with _open(archive) as handle:
            if isinstance(handle, zipfile.ZipFile):
                handle.extractall(staging)
            elif hasattr(tarfile, "data_filter"):
                handle.extractall(staging, filter="data")  # second line of defence (Python >= 3.10.12)
            else:  # pragma: no cover - old Python without extraction filters; members were checked above
                handle.extractall(staging)
        _merge_tree(staging, dest)
    except _FILTER_ERROR as exc:
        raise UnsafeArchiveError(f"refusing to extract unsafe archive {archive}: {exc}") from exc
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise DataFormatError(f"cannot extract {archive} into {dest}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    marker.write_text(_stamp(archive))
    return dest
