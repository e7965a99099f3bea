"""Safe extraction of downloaded archives (zip and tar, any compression tarfile understands).

Every member is checked before anything is written: absolute paths, `..` components, members reached through a
symbolic link of the same archive, links whose target lies outside the extraction folder, and device or FIFO
entries are refused with an `UnsafeArchiveError` naming the archive, the member and the reason. Extraction then goes
to a staging folder beside the target and is merged into place only once it has completed, so an interrupted
extraction never leaves a half-written tree under the final names.

Size limits (zip bombs) are checked from the member headers before anything is written:

* the total uncompressed size of all members must not exceed `max_bytes`
  (default `DEFAULT_MAX_EXTRACT_BYTES`, 200 GB; environment variable `ASYMFUSION_MAX_EXTRACT_BYTES`, a number of
  bytes with an optional K/M/G/T (powers of 1000) or KiB/MiB/GiB/TiB suffix);
* the compression ratio, total uncompressed size / archive size on disk, and for zip also every member's
  `file_size / compress_size`, must not exceed `max_ratio` (default `DEFAULT_MAX_EXTRACT_RATIO`, 100; environment
  variable `ASYMFUSION_MAX_EXTRACT_RATIO`). A ratio is only checked where the uncompressed size exceeds
  `RATIO_FLOOR` (1 MiB): tiny text members compress far better than that and can do no harm. Real dataset archives
  stay well below: PNG-filled zips compress about 1:1, Cityscapes gtFine (label PNGs and polygon JSON) about 5:1,
  a single all-constant 2048x1024 label PNG about 27:1.

The keyword arguments of `extract_archive` win over the environment, which wins over the defaults. A declared size
can lie, so zip members are copied through `ZipFile.open` with a byte budget: writing more than the headers declared
stops the extraction, removes the staging folder and raises `UnsafeArchiveError` (tar members are written with
exactly their header sizes).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from asymfusion.datasets.artifacts import FetchInputError
from asymfusion.datasets.diskspace import ensure_free_space
from asymfusion.datasets.formats import DataFormatError

__all__ = [
    "DEFAULT_MAX_EXTRACT_BYTES",
    "DEFAULT_MAX_EXTRACT_RATIO",
    "MAX_EXTRACT_BYTES_ENV",
    "MAX_EXTRACT_RATIO_ENV",
    "UnsafeArchiveError",
    "archive_members",
    "check_archive",
    "check_limits",
    "extract_archive",
    "extract_limits",
]

MAX_EXTRACT_BYTES_ENV = "ASYMFUSION_MAX_EXTRACT_BYTES"
MAX_EXTRACT_RATIO_ENV = "ASYMFUSION_MAX_EXTRACT_RATIO"
DEFAULT_MAX_EXTRACT_BYTES = 200 * 1000**3  # 200 GB: all of Cityscapes expanded is well under 100 GB
DEFAULT_MAX_EXTRACT_RATIO = 100.0
RATIO_FLOOR = 1 << 20  # ratios are checked only where more than this many bytes are uncompressed


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


def _safety_problems(archive: Path, handle: zipfile.ZipFile | tarfile.TarFile) -> list[str]:
    if isinstance(handle, zipfile.ZipFile):
        return _zip_problems(archive, handle)
    return _tar_problems(archive, handle)


def _raise_unsafe(archive: Path, problems: list[str]) -> None:
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise UnsafeArchiveError(f"refusing to extract unsafe archive {archive}:\n  {shown}{more}")


def check_archive(archive: str | Path) -> list[str]:
    """Member names of a safe archive; raises UnsafeArchiveError listing every unsafe member otherwise."""
    archive = Path(archive)
    with _open(archive) as handle:
        _raise_unsafe(archive, _safety_problems(archive, handle))
        return handle.namelist() if isinstance(handle, zipfile.ZipFile) else handle.getnames()


# ---------------------------------------------------------------------------------------------------------------
# Size limits (zip bombs)
# ---------------------------------------------------------------------------------------------------------------

_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4,
          "ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30, "ti": 1 << 40}


def _parse_bytes(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*", text.lower())
    if not match:
        raise ValueError(text)
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])


def _limit(value: float | None, env: str, default: float, parse, unit: str) -> float:
    if value is None:
        raw = os.environ.get(env, "").strip()
        if not raw:
            return default
        try:
            value = parse(raw)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise FetchInputError(f"${env}={raw!r}: expected a positive {unit}; unset it to use the default "
                                  f"{default:,}")
    if not value > 0:
        raise FetchInputError(f"extraction limit {value!r}: expected a positive {unit}")
    return value


def extract_limits(max_bytes: int | None = None, max_ratio: float | None = None) -> tuple[int, float]:
    """The limits in force: the arguments where given, else the environment variables, else the defaults."""
    size = _limit(max_bytes, MAX_EXTRACT_BYTES_ENV, DEFAULT_MAX_EXTRACT_BYTES, _parse_bytes,
                  "number of bytes (e.g. 500G)")
    ratio = _limit(max_ratio, MAX_EXTRACT_RATIO_ENV, DEFAULT_MAX_EXTRACT_RATIO, float, "number (e.g. 100)")
    return int(size), float(ratio)


def _declared(handle: zipfile.ZipFile | tarfile.TarFile) -> tuple[int, list[tuple[str, int, int]]]:
    """(total uncompressed bytes, [(zip member, uncompressed, compressed)]) from the member headers."""
    if isinstance(handle, zipfile.ZipFile):
        members = [(i.filename, i.file_size, i.compress_size) for i in handle.infolist() if not i.is_dir()]
        return sum(m[1] for m in members), members
    return sum(m.size for m in handle.getmembers() if m.isreg()), []


def check_limits(archive: Path, handle: zipfile.ZipFile | tarfile.TarFile, max_bytes: int, max_ratio: float) -> int:
    """Raise UnsafeArchiveError if the headers declare more than `max_bytes` or a ratio above `max_ratio`;
    returns the declared total (the byte budget of the extraction)."""
    total, members = _declared(handle)
    on_disk = archive.stat().st_size

    def fix(env: str, arg: str) -> str:
        return (f"Nothing was extracted. If {archive.name} is trusted, raise the limit with {env}=N "
                f"(or extract_archive({arg}=N)) and run again; otherwise delete it and fetch it again.")

    if total > max_bytes:
        raise UnsafeArchiveError(
            f"refusing to extract {archive}: its members expand to {total:,} bytes, above the limit of "
            f"{max_bytes:,} bytes.\n" + fix(MAX_EXTRACT_BYTES_ENV, "max_bytes"))
    found = []
    if total > RATIO_FLOOR and total / max(on_disk, 1) > max_ratio:
        found.append(f"{total:,} bytes from {on_disk:,} on disk: ratio {total / max(on_disk, 1):,.0f}:1")
    for name, size, packed in members:
        if size > RATIO_FLOOR and size / max(packed, 1) > max_ratio:
            found.append(f"member {name!r}: {size:,} bytes from {packed:,}: ratio {size / max(packed, 1):,.0f}:1")
    if found:
        shown = "\n  ".join(found[:5]) + (f"\n  ... and {len(found) - 5} more" if len(found) > 5 else "")
        raise UnsafeArchiveError(
            f"refusing to extract {archive}: compression ratio above the limit of {max_ratio:g}:1 (a zip bomb?):\n"
            f"  {shown}\n" + fix(MAX_EXTRACT_RATIO_ENV, "max_ratio"))
    return total


def _extract_zip(archive: Path, zf: zipfile.ZipFile, staging: Path, budget: int) -> None:
    """Copy every member through `ZipFile.open`, stopping once more bytes come out than the headers declared."""
    written = 0
    for info in zf.infolist():
        parts = [p for p in _normalise(info.filename).parts if p not in (".", "")]
        if not parts:
            continue
        target = staging.joinpath(*parts)
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        member = 0
        with zf.open(info) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                member += len(chunk)
                written += len(chunk)
                if member > info.file_size or written > budget:
                    raise UnsafeArchiveError(
                        f"refusing to extract {archive}: member {info.filename!r} expands beyond the sizes the "
                        f"headers declare ({info.file_size:,} bytes for it, {budget:,} in all): the archive lies "
                        f"about its sizes. Nothing was extracted; delete the archive and fetch it again.")
                dst.write(chunk)


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


def extract_archive(
    archive: str | Path,
    dest: str | Path,
    *,
    force: bool = False,
    max_bytes: int | None = None,
    max_ratio: float | None = None,
) -> Path:
    """Check `archive` (safety and size limits), extract it into `dest` (via a staging folder) and return `dest`.

    `max_bytes` / `max_ratio` override $ASYMFUSION_MAX_EXTRACT_BYTES / $ASYMFUSION_MAX_EXTRACT_RATIO and the defaults
    (see the module docstring). A marker file `dest/.<archive name>.extracted` records the archive's size and mtime;
    a later call with the same archive returns at once unless `force`.
    """
    archive = Path(archive)
    dest = Path(dest)
    marker = _marker(dest, archive)
    if not force and marker.is_file() and marker.read_text() == _stamp(archive):
        return dest
    limit_bytes, limit_ratio = extract_limits(max_bytes, max_ratio)
    with _open(archive) as handle:
        _raise_unsafe(archive, _safety_problems(archive, handle))
        budget = check_limits(archive, handle, limit_bytes, limit_ratio)
        ensure_free_space(dest, budget, f"extracting {archive.name}")
        dest.mkdir(parents=True, exist_ok=True)
        tag = hashlib.sha256(str(archive.resolve()).encode()).hexdigest()[:8]
        staging = dest / f".extract-{tag}.tmp"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        try:
            if isinstance(handle, zipfile.ZipFile):
                _extract_zip(archive, handle, staging, budget)
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
