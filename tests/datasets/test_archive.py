"""Safe extraction: crafted malicious tar and zip archives are refused before anything is written."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from asymfusion.datasets.archive import UnsafeArchiveError, check_archive, extract_archive
from asymfusion.datasets.formats import DataFormatError


def _tar(path: Path, members: list[tuple[str, str, str | bytes]]) -> Path:
    """members: (kind, name, payload) with kind file / dir / symlink / hardlink."""
    with tarfile.open(path, "w:gz") as tar:
        for kind, name, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = payload if isinstance(payload, bytes) else payload.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(payload)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, str(payload)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            tar.addfile(info)
    return path


def _zip(path: Path, members: list[tuple[str, bytes, bool]]) -> Path:
    """members: (name, data, is_symlink)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, link in members:
            info = zipfile.ZipInfo(name)
            if link:
                info.create_system = 3
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, data)
    return path


@pytest.mark.parametrize(
    "members, reason",
    [
        ([("file", "/tmp/asymfusion-evil.txt", "x")], "absolute path"),
        ([("file", "ok/../../evil.txt", "x")], "'..' path component"),
        ([("file", "../evil.txt", "x")], "'..' path component"),
        ([("symlink", "link", "/etc/passwd")], "points outside"),
        ([("symlink", "sub/link", "../../outside")], "points outside"),
        ([("hardlink", "hard", "../outside.txt")], "hard link"),
        ([("hardlink", "hard", "/etc/passwd")], "hard link"),
        ([("symlink", "up", "."), ("symlink", "up2", "up/..")], "goes through another symbolic link"),
        ([("symlink", "up", "."), ("file", "up/x", "x")], "reached through a symbolic link"),
        ([("symlink", "escape", "sub/.."), ("file", "escape/evil.txt", "x")], "through a symbolic link"),
        ([("fifo", "pipe", "")], "FIFO"),
    ],
)
def test_malicious_tar_is_refused_and_nothing_is_written(tmp_path: Path, members, reason: str) -> None:
    archive = _tar(tmp_path / "evil.tar.gz", [("file", "good/readme.txt", "fine"), *members])
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=reason) as info:
        extract_archive(archive, dest)
    assert str(archive) in str(info.value)
    assert not dest.exists() or not any(dest.rglob("*"))
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "outside.txt").exists()
    assert isinstance(info.value, DataFormatError)  # the CLI maps it to exit 1


@pytest.mark.parametrize(
    "members, reason",
    [
        ([("/abs/evil.txt", b"x", False)], "absolute path"),
        ([("a/../../evil.txt", b"x", False)], "'..' path component"),
        ([("C:/windows/evil.txt", b"x", False)], "absolute path"),
        ([("link", b"../../etc/passwd", True)], "points outside"),
        ([("link", b"/etc/passwd", True)], "points outside"),
    ],
)
def test_malicious_zip_is_refused(tmp_path: Path, members, reason: str) -> None:
    archive = _zip(tmp_path / "evil.zip", [("good/readme.txt", b"fine", False), *members])
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=reason):
        extract_archive(archive, dest)
    assert not dest.exists() or not any(dest.rglob("*"))


def test_safe_archives_extract_and_merge(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    tar = _tar(tmp_path / "a.tar.gz", [("dir", "gtFine", ""), ("file", "gtFine/train/x.png", "png"),
                                       ("symlink", "gtFine/alias.png", "train/x.png"), ("file", "README", "a")])
    zipped = _zip(tmp_path / "b.zip", [("leftImg8bit/train/y.png", b"left", False), ("README", b"b", False)])
    assert sorted(check_archive(zipped)) == ["README", "leftImg8bit/train/y.png"]
    extract_archive(tar, dest)
    extract_archive(zipped, dest)
    assert (dest / "gtFine/train/x.png").read_text() == "png"
    assert (dest / "gtFine/alias.png").read_text() == "png"
    assert (dest / "leftImg8bit/train/y.png").read_bytes() == b"left"
    assert (dest / "README").read_text() == "b"  # the later archive's file replaces the earlier one
    assert not list(dest.glob(".extract-*"))  # staging folders are gone
    (dest / "gtFine/train/x.png").write_text("edited")
    extract_archive(tar, dest)  # the marker says it is done: not extracted again
    assert (dest / "gtFine/train/x.png").read_text() == "edited"
    extract_archive(tar, dest, force=True)
    assert (dest / "gtFine/train/x.png").read_text() == "png"


def test_not_an_archive_names_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive at all")
    with pytest.raises(DataFormatError, match="junk.zip"):
        extract_archive(junk, tmp_path / "out")
