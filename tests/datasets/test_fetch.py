"""Downloads against a loopback HTTP server: verification, resume, retries, offline, --from-file."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import pytest

from asymfusion.datasets import download as download_mod
from asymfusion.datasets import fetch as fetch_mod
from asymfusion.datasets.fetch import (
    Artifact,
    FetchError,
    FetchOptions,
    fetch_artifact,
    fetch_nyudv2,
    file_digests,
    read_manifest,
)

from .server import LoopbackServer, closed_port_url

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def artifact_for(server: LoopbackServer, name: str = "big.bin", data: bytes = PAYLOAD, **kw) -> Artifact:
    server.files[f"/{name}"] = data
    fields = {"size": len(data), "sha256": sha256(data), **kw}
    return Artifact(name, server.url(f"/{name}"), **fields)


def leftovers(folder: Path) -> list[str]:
    """Anything in the folder besides verified files and the manifest (partials, pooch temporaries)."""
    return sorted(p.name for p in folder.iterdir() if p.name != "SHA256SUMS") if folder.exists() else []


def test_download_verifies_places_and_records(tmp_path: Path, server: LoopbackServer, fast: FetchOptions) -> None:
    art = artifact_for(server, md5=hashlib.md5(PAYLOAD).hexdigest())
    path = fetch_artifact(art, tmp_path, source="nyudv2", options=fast)
    assert path == tmp_path / "big.bin" and path.read_bytes() == PAYLOAD
    assert read_manifest(tmp_path) == {"big.bin": sha256(PAYLOAD)}
    assert leftovers(tmp_path) == ["big.bin"]
    assert "Range" not in server.gets("/big.bin")[0].headers
    assert server.gets("/big.bin")[0].headers["Accept-Encoding"] == "identity"  # sizes are of the stored bytes
    fetch_artifact(art, tmp_path, source="nyudv2", options=fast)  # present and verified: no new request
    assert len(server.gets("/big.bin")) == 1


def test_hash_mismatch_is_detected_and_nothing_lands(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions
) -> None:
    wrong = "0" * 64
    art = artifact_for(server, sha256=wrong)
    with pytest.raises(FetchError) as info:
        fetch_artifact(art, tmp_path, source="nyudv2", options=fast)
    message = str(info.value)
    assert art.url in message and wrong in message and sha256(PAYLOAD) in message
    assert "--from-file" in message
    assert not (tmp_path / "big.bin").exists()
    assert leftovers(tmp_path) == []  # neither the partial file nor pooch's temporary file is left
    assert read_manifest(tmp_path) == {}


def test_size_mismatch_without_hash_is_detected(tmp_path: Path, server: LoopbackServer, fast: FetchOptions) -> None:
    art = artifact_for(server, sha256=None, size=len(PAYLOAD) + 1)
    with pytest.raises(FetchError, match=rf"size: expected {len(PAYLOAD) + 1:,} bytes, got {len(PAYLOAD):,}"):
        fetch_artifact(art, tmp_path, source="taskonomy", options=fast)
    assert leftovers(tmp_path) == []


def test_without_published_hash_the_computed_one_is_recorded(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions
) -> None:
    art = artifact_for(server, sha256=None)
    fetch_artifact(art, tmp_path, source="taskonomy", options=fast)
    assert read_manifest(tmp_path) == {"big.bin": sha256(PAYLOAD)}
    assert (tmp_path / "SHA256SUMS").read_text() == f"{sha256(PAYLOAD)}  big.bin\n"  # sha256sum -c compatible


def test_interrupted_download_resumes_with_range(tmp_path: Path, server: LoopbackServer, fast: FetchOptions) -> None:
    art = artifact_for(server)
    half = len(PAYLOAD) // 2
    fast = replace(fast, chunk_size=4096)
    server.drop_first["/big.bin"] = half  # the first response dies half-way
    path = fetch_artifact(art, tmp_path, source="nyudv2", options=fast)
    gets = server.gets("/big.bin")
    assert len(gets) == 2
    assert "Range" not in gets[0].headers
    start = int(gets[1].headers["Range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= half  # what arrived was kept (up to the last whole read) and the rest was asked for
    assert file_digests(path)[1] == sha256(PAYLOAD)
    assert leftovers(tmp_path) == ["big.bin"]


def test_partial_file_from_an_earlier_run_is_resumed(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions
) -> None:
    art = artifact_for(server)
    (tmp_path / "big.bin.part").write_bytes(PAYLOAD[:30000])
    fetch_artifact(art, tmp_path, source="nyudv2", options=fast)
    (only,) = server.gets("/big.bin")
    assert only.headers["Range"] == "bytes=30000-"
    assert (tmp_path / "big.bin").read_bytes() == PAYLOAD


def test_server_that_ignores_range_restarts_cleanly(tmp_path: Path, server: LoopbackServer, fast: FetchOptions) -> None:
    art = artifact_for(server)
    server.ignore_range = True
    (tmp_path / "big.bin.part").write_bytes(b"\xff" * 5000)  # stale bytes must not be kept
    fetch_artifact(art, tmp_path, source="nyudv2", options=fast)
    assert (tmp_path / "big.bin").read_bytes() == PAYLOAD


def test_corrupt_partial_is_discarded_after_a_mismatch(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions
) -> None:
    art = artifact_for(server)
    (tmp_path / "big.bin.part").write_bytes(b"\x00" * 1000)  # wrong bytes that resuming would keep
    with pytest.raises(FetchError, match="sha256: expected"):
        fetch_artifact(art, tmp_path, source="nyudv2", options=fast)
    assert leftovers(tmp_path) == []
    fetch_artifact(art, tmp_path, source="nyudv2", options=fast)  # the next run starts over and succeeds
    assert (tmp_path / "big.bin").read_bytes() == PAYLOAD


def test_offline_names_url_expected_values_and_from_file(
    tmp_path: Path, fast: FetchOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = closed_port_url("/nyu_depth_v2_labeled.mat")
    art = Artifact("nyu_depth_v2_labeled.mat", url, size=123, sha256="a" * 64)
    sleeps: list[float] = []
    monkeypatch.setattr(download_mod, "_sleep", sleeps.append)
    with pytest.raises(FetchError) as info:
        fetch_artifact(art, tmp_path, source="nyudv2", options=replace(fast, retries=3, backoff=0.5, max_backoff=60))
    message = str(info.value)
    assert url in message and "a" * 64 in message and "123 bytes" in message
    assert "asymfusion fetch nyudv2 --from-file PATH/nyu_depth_v2_labeled.mat" in message
    assert "after 4 attempt(s)" in message
    assert sleeps == [0.5, 1.0, 2.0]  # exponential backoff
    assert not (tmp_path / "nyu_depth_v2_labeled.mat").exists()


def test_http_404_fails_at_once(tmp_path: Path, server: LoopbackServer, fast: FetchOptions) -> None:
    art = Artifact("gone.bin", server.url("/gone.bin"), size=10)
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_artifact(art, tmp_path, source="inception", options=fast)
    assert len(server.gets("/gone.bin")) == 1


def test_http_503_is_retried(tmp_path: Path, server: LoopbackServer, fast: FetchOptions) -> None:
    art = artifact_for(server)
    calls = []

    def flaky(handler, request):
        calls.append(request)
        if len(calls) == 1:
            handler.reply(503, b"busy")
        else:
            handler.serve_bytes(PAYLOAD, request)

    server.routes[("GET", "/big.bin")] = flaky
    fetch_artifact(art, tmp_path, source="nyudv2", options=fast)
    assert len(calls) == 2 and (tmp_path / "big.bin").read_bytes() == PAYLOAD


def test_from_file_right_and_wrong(tmp_path: Path, fast: FetchOptions) -> None:
    url = closed_port_url("/weights.pth")  # never contacted
    art = Artifact("weights.pth", url, size=len(PAYLOAD), sha256=sha256(PAYLOAD))
    good, bad = tmp_path / "dl" / "weights.pth", tmp_path / "dl" / "bad.pth"
    good.parent.mkdir()
    good.write_bytes(PAYLOAD)
    bad.write_bytes(PAYLOAD[:-1] + b"\x00")
    dest = tmp_path / "weights"
    with pytest.raises(FetchError) as info:
        fetch_artifact(art, dest, source="inception", options=fast, from_file=bad)
    assert str(bad) in str(info.value) and sha256(PAYLOAD) in str(info.value)
    assert not (dest / "weights.pth").exists()
    path = fetch_artifact(art, dest, source="inception", options=fast, from_file=good)
    assert path.read_bytes() == PAYLOAD and good.exists()  # copied, the original is left alone
    assert read_manifest(dest) == {"weights.pth": sha256(PAYLOAD)}
    with pytest.raises(FetchError, match="no such file"):
        fetch_artifact(art, dest, source="inception", options=fast, from_file=tmp_path / "missing.pth")


def test_fetch_nyudv2_source_with_from_file(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"nyu_depth_v2_labeled.mat": PAYLOAD, "splits.mat": b"splits" * 10, "classMapping40.mat": b"map" * 20}
    arts = tuple(
        Artifact(name, server.url(f"/{name}"), size=len(data), sha256=sha256(data)) for name, data in files.items()
    )
    for name, data in list(files.items())[1:]:
        server.files[f"/{name}"] = data  # the big file is not served: it must come from --from-file
    monkeypatch.setattr(fetch_mod, "NYU_ARTIFACTS", arts)
    local = tmp_path / "downloads" / "renamed-by-browser.mat"  # matched by its exact size
    local.parent.mkdir()
    local.write_bytes(PAYLOAD)
    folder = fetch_nyudv2(tmp_path / "raw", options=fast, from_files=[local])
    assert {p.name for p in folder.iterdir()} == {*files, "SHA256SUMS"}
    assert read_manifest(folder) == {name: sha256(data) for name, data in files.items()}
    assert server.gets("/nyu_depth_v2_labeled.mat") == []
    other = tmp_path / "downloads" / "other.bin"
    other.write_bytes(b"123")
    with pytest.raises(FetchError, match="cannot tell which nyudv2 file"):
        fetch_nyudv2(tmp_path / "raw", options=fast, from_files=[other])


def test_registry_values_come_from_data_sources() -> None:
    """The pinned values (copied from DATA-SOURCES.md); a change here must be a deliberate, documented one."""
    by_name = {a.name: a for a in fetch_mod.NYU_ARTIFACTS + fetch_mod.INCEPTION_ARTIFACTS + fetch_mod.TASKONOMY_LISTS}
    mat = by_name["nyu_depth_v2_labeled.mat"]
    assert (mat.size, mat.md5) == (2_972_037_809, "520609c519fba3ba5ac58c8fefcc3530")
    assert mat.sha256 == "2d724b0c0ab358aa1ce5df855e5bd14a2279ab7202efe22f32a30d612dcb86aa"
    assert (by_name["splits.mat"].size, by_name["splits.mat"].md5) == (2626, "08e3c3aea27130ac7c01ffd739a4535f")
    assert "b92d15c506876dada1ac4086938e30ebc4deb49b" in by_name["classMapping40.mat"].url
    inception = by_name["weights-inception-2015-12-05-6726825d.pth"]
    assert inception.size == 95_628_359 and inception.sha256.startswith("6726825d")
    for art in by_name.values():
        assert art.sha256 is None or len(art.sha256) == 64
        assert art.provenance
    assert all(len(c) == 40 for c in fetch_mod.TASKONOMY_COMMITS.values())


def test_manifest_is_sha256sum_compatible(tmp_path: Path) -> None:
    fetch_mod.record_manifest(tmp_path, {"b/x.png": "1" * 64, "a.txt": "2" * 64})
    fetch_mod.record_manifest(tmp_path, {"a.txt": "3" * 64})
    assert (tmp_path / "SHA256SUMS").read_text() == f"{'3' * 64}  a.txt\n{'1' * 64}  b/x.png\n"
    (tmp_path / "SHA256SUMS").write_text("garbage\n")
    with pytest.raises(fetch_mod.DataFormatError, match="SHA256SUMS:1"):
        read_manifest(tmp_path)


def test_data_dir_default_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ASYMFUSION_DATA", raising=False)
    assert fetch_mod.default_data_dir() == Path("data")
    monkeypatch.setenv("ASYMFUSION_DATA", str(tmp_path))
    assert fetch_mod.default_data_dir() == tmp_path
    assert fetch_mod.source_dir(tmp_path, "inception") == tmp_path / "weights"
    assert fetch_mod.source_dir(tmp_path, "nyudv2") == tmp_path / "raw" / "nyudv2"
    assert os.fspath(fetch_mod.source_dir("d", "taskonomy")) == os.path.join("d", "raw", "taskonomy")
