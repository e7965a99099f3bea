"""Adversarial fetch cases: downloads of unknown size (never pinned unless complete) and several sources at once
(every placeable file is placed before the one error that lists the others)."""

from __future__ import annotations

import hashlib
import logging
import shutil
import zipfile
from pathlib import Path

import pytest

from asymfusion.datasets import download as download_mod
from asymfusion.datasets import fetch as fetch_mod
from asymfusion.datasets.download import place_artifact
from asymfusion.datasets import diskspace as diskspace_mod
from asymfusion.datasets.archive import extract_archive
from asymfusion.datasets.artifacts import FetchInputError
from asymfusion.datasets.diskspace import DiskSpaceError
from asymfusion.datasets.fetch import (
    TASKONOMY_COMMITS,
    TASKONOMY_REPO,
    Artifact,
    FetchError,
    FetchOptions,
    fetch_artifact,
    fetch_nyudv2,
    fetch_taskonomy,
    read_manifest,
)

from .fixtures import write_taskonomy_raw
from .server import LoopbackServer, closed_port_url

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes
CUT = 30_000
NOT_PINNED = "completeness cannot be checked: not recorded in SHA256SUMS; the next fetch downloads it again"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unknown(server: LoopbackServer, name: str = "tile.png", data: bytes = PAYLOAD) -> Artifact:
    """An artifact with nothing published (like a Taskonomy file before its first download)."""
    server.files[f"/{name}"] = data
    return Artifact(name, server.url(f"/{name}"), size=None, sha256=None)


# ------------------------------------------------------------------------------------------------------------------
# 1. Downloads of unknown size
# ------------------------------------------------------------------------------------------------------------------


def test_truncated_download_without_length_is_kept_but_never_pinned(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions, caplog: pytest.LogCaptureFixture
) -> None:
    art = unknown(server)
    server.no_length.add("/tile.png")
    server.drop_first["/tile.png"] = CUT  # the connection closes early; without a length nothing tells
    with caplog.at_level(logging.WARNING, logger=download_mod.__name__):
        placed = place_artifact(art, tmp_path, source="taskonomy", options=fast)
    assert placed.path.read_bytes() == PAYLOAD[:CUT]  # kept ...
    assert read_manifest(tmp_path) == {}  # ... but its hash is not pinned
    assert not placed.complete
    assert NOT_PINNED in caplog.text and art.url in caplog.text

    # The next fetch downloads it again (complete this time, but still without a length: still not pinned).
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=download_mod.__name__):
        path = fetch_artifact(art, tmp_path, source="taskonomy", options=fast)
    assert len(server.gets("/tile.png")) == 2
    assert path.read_bytes() == PAYLOAD
    assert read_manifest(tmp_path) == {} and NOT_PINNED in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tile.png"]  # no copy left aside

    # Once the server says how long it is, the file is complete and pinned; then it is kept, verified.
    server.no_length.clear()
    fetch_artifact(art, tmp_path, source="taskonomy", options=fast)
    assert len(server.gets("/tile.png")) == 3
    assert read_manifest(tmp_path) == {"tile.png": sha256(PAYLOAD)}
    fetch_artifact(art, tmp_path, source="taskonomy", options=fast)
    assert len(server.gets("/tile.png")) == 3


def test_content_length_or_content_range_total_establish_completeness(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions
) -> None:
    art = unknown(server)
    assert place_artifact(art, tmp_path / "a", source="taskonomy", options=fast).complete  # Content-Length
    assert read_manifest(tmp_path / "a") == {"tile.png": sha256(PAYLOAD)}

    server.no_length.add("/tile.png")  # a resumed download: the 206's Content-Range says "/102400"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "tile.png.part").write_bytes(PAYLOAD[:CUT])
    placed = place_artifact(art, tmp_path / "b", source="taskonomy", options=fast)
    assert server.gets("/tile.png")[-1].headers["Range"] == f"bytes={CUT}-"
    assert placed.complete and placed.path.read_bytes() == PAYLOAD
    assert read_manifest(tmp_path / "b") == {"tile.png": sha256(PAYLOAD)}


def test_unverifiable_copy_is_put_back_when_the_new_download_fails(
    tmp_path: Path, fast: FetchOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download_mod, "_sleep", lambda s: None)
    art = Artifact("tile.png", closed_port_url("/tile.png"))
    (tmp_path / "tile.png").write_bytes(b"earlier, unverified copy")
    with pytest.raises(FetchError, match="could not download"):
        fetch_artifact(art, tmp_path, source="taskonomy", options=fast)
    assert (tmp_path / "tile.png").read_bytes() == b"earlier, unverified copy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tile.png"]


def test_taskonomy_never_pins_a_truncated_file(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    remote = tmp_path / "remote"
    lists = write_taskonomy_raw(remote, domains=("rgb",))
    for path in (remote / "rgb").iterdir():
        server.files[f"/{TASKONOMY_REPO}/{TASKONOMY_COMMITS['rgb']}/rgb/{path.name}"] = path.read_bytes()
    arts = []
    for name in ("train_domain.txt", "val_domain.txt"):
        data = (remote / name).read_bytes()
        server.files[f"/cen/{name}"] = data
        arts.append(Artifact(name, server.url(f"/cen/{name}"), size=len(data), sha256=sha256(data), provenance="t"))
    monkeypatch.setattr(fetch_mod, "TASKONOMY_LISTS", tuple(arts))
    monkeypatch.setattr(fetch_mod, "TASKONOMY_LIST_COUNTS", {"train_domain.txt": 3, "val_domain.txt": 2})
    template = server.base + "/{repo}/{commit}/{path}"
    victim = lists["train"][0].format(domain="rgb")
    key = f"/{TASKONOMY_REPO}/{TASKONOMY_COMMITS['rgb']}/{victim}"
    server.no_length.add(key)
    server.drop_first[key] = 40  # a PNG cut after 40 bytes, and nothing to tell
    folder = tmp_path / "raw"

    def gets() -> int:
        return sum(1 for r in server.requests if r.path.endswith(".png"))

    with caplog.at_level(logging.WARNING, logger=download_mod.__name__):
        fetch_taskonomy(folder, options=fast, domains=("rgb",), url_template=template)
    assert (folder / victim).stat().st_size == 40
    manifest = read_manifest(folder)
    assert victim not in manifest and len([k for k in manifest if k.startswith("rgb/")]) == 4
    assert NOT_PINNED in caplog.text and victim in caplog.text
    assert gets() == 5

    server.no_length.clear()
    fetch_taskonomy(folder, options=fast, domains=("rgb",), url_template=template)
    assert gets() == 6  # only the unrecorded file is downloaded again
    assert (folder / victim).read_bytes() == (remote / victim).read_bytes()
    assert read_manifest(folder)[victim] == sha256((remote / victim).read_bytes())
    fetch_taskonomy(folder, options=fast, domains=("rgb",), url_template=template)
    assert gets() == 6


# ------------------------------------------------------------------------------------------------------------------
# 3. Several files: place what can be placed, then one error for the rest
# ------------------------------------------------------------------------------------------------------------------

NYU_FILES = {"nyu_depth_v2_labeled.mat": PAYLOAD, "splits.mat": b"splits" * 10, "classMapping40.mat": b"map" * 20}


def nyu_like(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> tuple[Artifact, ...]:
    arts = tuple(Artifact(n, server.url(f"/{n}"), size=len(d), sha256=sha256(d)) for n, d in NYU_FILES.items())
    monkeypatch.setattr(fetch_mod, "NYU_ARTIFACTS", arts)
    monkeypatch.setattr(download_mod, "_sleep", lambda s: None)
    return arts


def local_copies(tmp_path: Path, names: list[str], corrupt: str | None = None) -> list[Path]:
    out = []
    for name in names:
        path = tmp_path / "downloads" / name
        path.parent.mkdir(exist_ok=True)
        data = NYU_FILES[name]
        path.write_bytes(data[:-1] + b"\x00" if name == corrupt else data)
        out.append(path)
    return out


def test_from_files_are_placed_although_the_first_download_fails(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    arts = nyu_like(server, monkeypatch)
    server.routes[("GET", "/nyu_depth_v2_labeled.mat")] = lambda handler, request: handler.reply(503, b"down")
    given = local_copies(tmp_path, ["splits.mat", "classMapping40.mat"])
    folder = tmp_path / "raw"
    with pytest.raises(FetchError) as info:
        fetch_nyudv2(folder, options=fast, from_files=given)
    message = str(info.value)
    assert "could not fetch 1 of 3 nyudv2 file(s)" in message and "the other 2 were placed" in message
    assert arts[0].url in message and "HTTP 503" in message
    assert "asymfusion fetch nyudv2 --from-file PATH/nyu_depth_v2_labeled.mat" in message
    assert "splits.mat:" not in message and "classMapping40.mat:" not in message
    assert {p.name for p in folder.iterdir()} == {"splits.mat", "classMapping40.mat", "SHA256SUMS"}
    assert read_manifest(folder) == {n: sha256(NYU_FILES[n]) for n in ("splits.mat", "classMapping40.mat")}
    assert server.gets("/splits.mat") == [] and server.gets("/classMapping40.mat") == []


def test_a_from_file_that_does_not_verify_is_listed_and_not_placed(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    nyu_like(server, monkeypatch)
    server.files["/nyu_depth_v2_labeled.mat"] = PAYLOAD  # downloads fine
    given = local_copies(tmp_path, ["splits.mat", "classMapping40.mat"], corrupt="splits.mat")
    folder = tmp_path / "raw"
    with pytest.raises(FetchError) as info:
        fetch_nyudv2(folder, options=fast, from_files=given)
    message = str(info.value)
    assert "could not fetch 1 of 3" in message and str(given[0]) in message
    assert f"sha256: expected {sha256(NYU_FILES['splits.mat'])}" in message
    assert "--from-file PATH/splits.mat" in message
    assert not (folder / "splits.mat").exists() and server.gets("/splits.mat") == []
    assert set(read_manifest(folder)) == {"nyu_depth_v2_labeled.mat", "classMapping40.mat"}


def test_every_failure_is_listed(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    nyu_like(server, monkeypatch)  # nothing is served: three 404s
    with pytest.raises(FetchError) as info:
        fetch_nyudv2(tmp_path / "raw", options=fast)
    message = str(info.value)
    assert "could not fetch 3 of 3" in message and "placed" not in message.splitlines()[0]
    for name in NYU_FILES:
        assert f"  - {name}: could not download" in message and f"--from-file PATH/{name}" in message
    assert read_manifest(tmp_path / "raw") == {}


def test_the_same_file_given_twice_by_from_file_is_refused_before_anything_is_placed(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    arts = nyu_like(server, monkeypatch)
    a, b = tmp_path / "a" / arts[1].basename, tmp_path / "b" / arts[1].basename
    for path in (a, b):
        path.parent.mkdir()
        path.write_bytes(NYU_FILES[arts[1].basename])
    folder = tmp_path / "raw"
    with pytest.raises(FetchInputError, match="given twice") as info:
        fetch_nyudv2(folder, options=fast, from_files=[a, b])
    assert str(a) in str(info.value) and str(b) in str(info.value)
    assert not folder.exists() or not any(folder.iterdir())
    assert server.requests == []
    server.files.update({f"/{n}": d for n, d in NYU_FILES.items()})
    fetch_nyudv2(folder, options=fast, from_files=[a, a])  # the same path twice is the same copy
    assert (folder / arts[1].basename).read_bytes() == NYU_FILES[arts[1].basename]


def test_a_disk_too_small_for_the_downloads_is_reported_before_any_byte_is_written(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    nyu_like(server, monkeypatch)
    server.files.update({f"/{n}": d for n, d in NYU_FILES.items()})
    need = sum(len(d) for d in NYU_FILES.values())
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(diskspace_mod.shutil, "disk_usage", lambda p: usage._replace(free=need - 1))
    folder = tmp_path / "raw"
    with pytest.raises(DiskSpaceError, match=f"needs {need:,} bytes") as info:
        fetch_nyudv2(folder, options=fast)
    assert "--data-dir" in str(info.value) and not isinstance(info.value, FetchInputError)  # a runtime failure, exit 1
    assert not folder.exists() and server.requests == []
    monkeypatch.setattr(diskspace_mod.shutil, "disk_usage", lambda p: usage._replace(free=need))
    fetch_nyudv2(folder, options=fast)
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".mat") == sorted(NYU_FILES)


def test_an_archive_larger_than_the_free_disk_is_not_extracted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x/data.bin", b"\x01" * 5000)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(diskspace_mod.shutil, "disk_usage", lambda p: usage._replace(free=4999))
    with pytest.raises(DiskSpaceError, match="extracting a.zip"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
