"""Safe extraction: crafted malicious tar and zip archives are refused before anything is written."""

from __future__ import annotations

import io
import re
import stat
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from asymfusion.datasets import archive as archive_mod
from asymfusion.datasets.archive import UnsafeArchiveError, check_archive, extract_archive
from asymfusion.datasets.artifacts import FetchInputError
from asymfusion.datasets.formats import DataFormatError, write_png


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


# ------------------------------------------------------------------------------------------------------------------
# Size limits (zip bombs)
# ------------------------------------------------------------------------------------------------------------------

ZEROS = 4 << 20  # 4 MiB of zeros deflate to ~4 KB: a ratio of about 1000:1


def _bomb(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("readme.txt", b"looks harmless")
        zf.writestr("data/zeros.bin", b"\0" * ZEROS)
    return path


def _snapshot(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def no_limit_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("ASYMFUSION_MAX_EXTRACT_BYTES", raising=False)
    monkeypatch.delenv("ASYMFUSION_MAX_EXTRACT_RATIO", raising=False)
    return monkeypatch


def test_zip_bomb_is_refused_before_anything_is_written(tmp_path: Path, no_limit_env) -> None:
    bomb = _bomb(tmp_path / "bomb.zip")
    dest = tmp_path / "out"
    (dest / "kept").mkdir(parents=True)
    (dest / "kept" / "old.txt").write_text("old")
    before = _snapshot(dest)
    with pytest.raises(UnsafeArchiveError) as info:
        extract_archive(bomb, dest)
    message = str(info.value)
    assert str(bomb) in message and "limit of 100:1" in message
    assert re.search(r"ratio 1,\d{3}:1", message)  # the archive's and the member's ratio, ~1000:1
    assert "'data/zeros.bin'" in message and "ASYMFUSION_MAX_EXTRACT_RATIO" in message
    assert "Nothing was extracted" in message
    assert _snapshot(dest) == before  # no member, no staging folder, no marker


def test_tar_bomb_is_refused_by_its_total_ratio(tmp_path: Path, no_limit_env) -> None:
    bomb = _tar(tmp_path / "bomb.tar.gz", [("file", "zeros.bin", b"\0" * ZEROS)])
    with pytest.raises(UnsafeArchiveError, match=r"bomb\.tar\.gz: compression ratio above the limit of 100:1"):
        extract_archive(bomb, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_limits_are_adjustable_by_argument_and_environment(tmp_path: Path, no_limit_env) -> None:
    bomb = _bomb(tmp_path / "bomb.zip")
    extract_archive(bomb, tmp_path / "a", max_ratio=5000)
    assert (tmp_path / "a" / "data" / "zeros.bin").stat().st_size == ZEROS
    no_limit_env.setenv("ASYMFUSION_MAX_EXTRACT_RATIO", "5000")
    extract_archive(bomb, tmp_path / "b")
    assert (tmp_path / "b" / "data" / "zeros.bin").stat().st_size == ZEROS
    with pytest.raises(UnsafeArchiveError, match="limit of 50:1"):
        extract_archive(bomb, tmp_path / "c", max_ratio=50)  # the argument wins over the environment
    no_limit_env.setenv("ASYMFUSION_MAX_EXTRACT_BYTES", "1M")  # 1,000,000 bytes < 4 MiB
    with pytest.raises(UnsafeArchiveError) as info:
        extract_archive(bomb, tmp_path / "d")
    assert f"{ZEROS + 14:,} bytes, above the limit of 1,000,000 bytes" in str(info.value)
    assert "ASYMFUSION_MAX_EXTRACT_BYTES" in str(info.value)
    with pytest.raises(UnsafeArchiveError, match="limit of 1,048,576 bytes"):
        extract_archive(bomb, tmp_path / "d", max_bytes=1 << 20)
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()
    no_limit_env.setenv("ASYMFUSION_MAX_EXTRACT_BYTES", "lots")
    with pytest.raises(FetchInputError, match=r"\$ASYMFUSION_MAX_EXTRACT_BYTES='lots': expected a positive"):
        extract_archive(bomb, tmp_path / "e")
    assert FetchInputError.exit_code == 2


def test_realistic_archives_pass_the_default_limits(tmp_path: Path, no_limit_env) -> None:
    """Label PNGs (mostly constant), incompressible RGB-like data and small, very compressible text members."""
    labels = np.zeros((1024, 2048), np.uint8)
    labels[:400], labels[700:] = 23, 7
    write_png(tmp_path / "label.png", labels)
    archive = tmp_path / "gtFine_like.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(20):
            zf.write(tmp_path / "label.png", f"gtFine/train/city/frame{i}_gtFine_labelIds.png")
        zf.writestr("leftImg8bit/train/city/frame0.png", np.random.default_rng(0).bytes(2 << 20))
        zf.writestr("README", b" " * 20_000)  # ratio ~200:1, but far too small to matter
    extract_archive(archive, tmp_path / "out")
    assert len(list((tmp_path / "out" / "gtFine" / "train" / "city").iterdir())) == 20
    assert (tmp_path / "out" / "README").stat().st_size == 20_000


def test_more_bytes_than_declared_stop_the_extraction(
    tmp_path: Path, no_limit_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Headers that understate the sizes (simulated): the byte budget stops the copy and the staging is removed."""
    archive = _zip(tmp_path / "liar.zip", [("a.bin", b"x" * 5000, False), ("b.bin", b"y" * 5000, False)])
    monkeypatch.setattr(archive_mod, "_declared", lambda handle: (6000, []))
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=r"liar\.zip: member 'b\.bin' expands beyond .* 6,000 in all"):
        extract_archive(archive, dest)
    assert _snapshot(dest) == []
