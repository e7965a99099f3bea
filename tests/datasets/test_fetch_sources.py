"""Whole-source fetches against the loopback server: Taskonomy per-file with manifests, Cityscapes login flow."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from asymfusion.datasets import fetch as fetch_mod
from asymfusion.datasets.fetch import (
    TASKONOMY_COMMITS,
    TASKONOMY_REPO,
    Artifact,
    FetchError,
    FetchOptions,
    fetch_cityscapes,
    fetch_taskonomy,
    read_manifest,
)

from .fixtures import write_taskonomy_raw
from .server import LoopbackServer

DOMAINS = ("rgb", "depth_zbuffer", "edge_texture")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def taskonomy_remote(tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch):
    """A copy of a tiny 'sample repository' served at /<repo>/<commit>/<path>, with CEN-style lists."""
    remote = tmp_path / "remote"
    lists = write_taskonomy_raw(remote, domains=DOMAINS)
    for domain in DOMAINS:
        for path in (remote / domain).iterdir():
            server.files[f"/{TASKONOMY_REPO}/{TASKONOMY_COMMITS[domain]}/{domain}/{path.name}"] = path.read_bytes()
    arts = []
    for name in ("train_domain.txt", "val_domain.txt"):
        data = (remote / name).read_bytes()
        server.files[f"/cen/{name}"] = data
        arts.append(Artifact(name, server.url(f"/cen/{name}"), size=len(data), sha256=sha256(data), provenance="t"))
    monkeypatch.setattr(fetch_mod, "TASKONOMY_LISTS", tuple(arts))
    monkeypatch.setattr(fetch_mod, "TASKONOMY_LIST_COUNTS", {"train_domain.txt": 3, "val_domain.txt": 2})
    return remote, lists, server.base + "/{repo}/{commit}/{path}"


def image_gets(server: LoopbackServer) -> int:
    return sum(1 for r in server.requests if r.path.endswith(".png"))


def test_taskonomy_per_file_with_pinned_commits_and_manifest(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions, taskonomy_remote
) -> None:
    remote, lists, template = taskonomy_remote
    folder = tmp_path / "raw"
    fetch_taskonomy(folder, options=fast, domains=DOMAINS, url_template=template)
    names = [t.format(domain=d) for t in lists["train"] + lists["val"] for d in DOMAINS]
    for name in names:
        assert (folder / name).read_bytes() == (remote / name).read_bytes()
    manifest = read_manifest(folder)
    assert set(manifest) == {*names, "train_domain.txt", "val_domain.txt"}
    assert manifest[names[0]] == sha256((remote / names[0]).read_bytes())
    assert image_gets(server) == len(names) == 15
    for request in server.requests:
        if request.path.endswith(".png"):
            domain = request.path.split("/")[4]
            assert request.path.startswith(f"/{TASKONOMY_REPO}/{TASKONOMY_COMMITS[domain]}/")

    fetch_taskonomy(folder, options=fast, domains=DOMAINS, url_template=template)
    assert image_gets(server) == 15  # everything verified against the manifest, nothing downloaded again

    # The server now serves different bytes: the manifest recorded on first download catches it.
    victim = names[1]
    (folder / victim).unlink()
    key = f"/{TASKONOMY_REPO}/{TASKONOMY_COMMITS[victim.split('/')[0]]}/{victim}"
    server.files[key] = server.files[key][:-4] + b"\x00\x00\x00\x00"
    with pytest.raises(FetchError) as info:
        fetch_taskonomy(folder, options=fast, domains=DOMAINS, url_template=template)
    assert manifest[victim] in str(info.value) and server.url(key) in str(info.value)
    assert not (folder / victim).exists()


def test_taskonomy_failures_do_not_stop_the_other_files_and_are_listed_together(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions, taskonomy_remote
) -> None:
    remote, lists, template = taskonomy_remote
    names = [t.format(domain=d) for t in lists["train"] + lists["val"] for d in DOMAINS]
    gone = {names[0]: None, names[-1]: None}
    keys = {n: f"/{TASKONOMY_REPO}/{TASKONOMY_COMMITS[n.split('/')[0]]}/{n}" for n in gone}
    saved = {n: server.files.pop(k) for n, k in keys.items()}
    folder = tmp_path / "raw"
    with pytest.raises(FetchError) as info:
        fetch_taskonomy(folder, options=replace(fast, jobs=1), domains=DOMAINS, url_template=template)
    message = str(info.value)
    assert "2 of 15" in message and all(n in message for n in gone)
    placed = [n for n in names if (folder / n).is_file()]
    assert sorted(placed) == sorted(set(names) - set(gone))  # one worker: every other file was still fetched
    before = image_gets(server)
    for n, k in keys.items():
        server.files[k] = saved[n]
    fetch_taskonomy(folder, options=fast, domains=DOMAINS, url_template=template)
    assert image_gets(server) - before == 2  # the retry fetches only the two that failed


def test_taskonomy_commit_override_and_local_copy(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions, taskonomy_remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote, lists, template = taskonomy_remote
    folder = fetch_taskonomy(tmp_path / "a", options=fast, domains=("rgb",), from_files=[remote],
                             url_template=template)
    assert image_gets(server) == 0  # every file came from the local copy (and was hashed into the manifest)
    assert len([k for k in read_manifest(folder) if k.startswith("rgb/")]) == 5
    commit = "f" * 40
    for path in (remote / "rgb").iterdir():
        server.files[f"/{TASKONOMY_REPO}/{commit}/rgb/{path.name}"] = path.read_bytes()
    monkeypatch.setenv("ASYMFUSION_TASKONOMY_COMMIT", commit)
    fetch_taskonomy(tmp_path / "b", options=fast, domains=("rgb",), url_template=template)
    assert image_gets(server) == 5
    assert all(f"/{commit}/" in r.path for r in server.requests if r.path.endswith(".png"))
    with pytest.raises(FetchError, match="40-hex"):
        fetch_taskonomy(tmp_path / "c", options=fast, commit="main", url_template=template)
    with pytest.raises(FetchError, match="unknown Taskonomy domain"):
        fetch_taskonomy(tmp_path / "c", options=fast, domains=("keypoints2d",), url_template=template)


# ------------------------------------------------------------------------------------------------------------------
# Cityscapes
# ------------------------------------------------------------------------------------------------------------------


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


GTFINE = make_zip({"gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png": b"\x89PNG fake" * 50,
                   "README": b"cityscapes readme", "license.txt": b"terms"})


@pytest.fixture
def cityscapes_site(server: LoopbackServer):
    """Just enough of www.cityscapes-dataset.com for cityscapesscripts' downloader."""
    state = {"md5": hashlib.md5(GTFINE).hexdigest(), "packages": {"gtFine_trainvaltest.zip": ("1", GTFINE)}}

    def login_get(handler, request):
        handler.reply(200, b"<form>")

    def login_post(handler, request):
        form = parse_qs(request.body.decode())
        ok = (form.get("username"), form.get("password"), form.get("submit")) == (["alice"], ["s3cret"], ["Login"])
        handler.reply(302 if ok else 200, b"", {"Location": "/"} if ok else {})

    def listing(handler, request):
        body = [{"name": name, "packageID": pid, "size": "1 KB", "thirdparty": "0"}
                for name, (pid, _) in state["packages"].items()]
        handler.reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def md5sum(handler, request):
        handler.reply(200, f"{state['md5']}  gtFine_trainvaltest.zip\n".encode())

    def file_handling(handler, request):
        handler.serve_bytes(GTFINE, request)

    server.routes.update({
        ("GET", "/login"): login_get,
        ("POST", "/login"): login_post,
        ("GET", "/downloads/?list"): listing,
        ("GET", "/md5-sum/?packageID=1"): md5sum,
        ("GET", "/file-handling/?packageID=1"): file_handling,
    })
    return state


def test_cityscapes_without_credentials_explains_and_never_prompts(tmp_path: Path, fast: FetchOptions) -> None:
    with pytest.raises(FetchError) as info:
        fetch_cityscapes(tmp_path, options=fast, base_url="http://127.0.0.1:9")
    message = str(info.value)
    assert "CITYSCAPES_USERNAME" in message and "CITYSCAPES_PASSWORD" in message
    assert "credentials.json" in message and "--from-file" in message


def test_cityscapes_download_with_md5_check_and_extraction(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions, cityscapes_site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYSCAPES_USERNAME", "alice")
    monkeypatch.setenv("CITYSCAPES_PASSWORD", "s3cret")
    folder = fetch_cityscapes(tmp_path / "cs", options=fast, packages=("gtFine_trainvaltest.zip",),
                              base_url=server.base)
    assert (folder / "gtFine_trainvaltest.zip").read_bytes() == GTFINE
    assert (folder / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png").is_file()
    assert read_manifest(folder) == {"gtFine_trainvaltest.zip": sha256(GTFINE)}
    assert not (folder / ".partial").exists()
    assert len(server.gets("/file-handling/?packageID=1")) == 1
    fetch_cityscapes(folder, options=fast, packages=("gtFine_trainvaltest.zip",), base_url=server.base)
    assert len(server.gets("/file-handling/?packageID=1")) == 1  # present and recorded: not downloaded again


def test_cityscapes_md5_mismatch_places_nothing(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions, cityscapes_site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYSCAPES_USERNAME", "alice")
    monkeypatch.setenv("CITYSCAPES_PASSWORD", "s3cret")
    cityscapes_site["md5"] = "0" * 32
    with pytest.raises(FetchError) as info:
        fetch_cityscapes(tmp_path / "cs", options=fast, packages=("gtFine_trainvaltest.zip",), base_url=server.base)
    assert "0" * 32 in str(info.value) and hashlib.md5(GTFINE).hexdigest() in str(info.value)
    assert "file-handling/?packageID=1" in str(info.value) and "--from-file" in str(info.value)
    assert not (tmp_path / "cs" / "gtFine_trainvaltest.zip").exists()
    assert not (tmp_path / "cs" / "gtFine").exists()


def test_cityscapes_bad_credentials_and_no_access(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions, cityscapes_site, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "xdg-data" / "cityscapesscripts" / "credentials.json"  # cityscapesscripts' own file
    store.parent.mkdir(parents=True)
    store.write_text(json.dumps({"username": "alice", "password": "wrong"}))
    with pytest.raises(FetchError, match="login .* failed"):
        fetch_cityscapes(tmp_path / "cs", options=fast, base_url=server.base)
    store.write_text(json.dumps({"username": "alice", "password": "s3cret"}))
    with pytest.raises(FetchError, match="granted on request"):
        fetch_cityscapes(tmp_path / "cs", options=fast, packages=("disparity_trainvaltest.zip",),
                         base_url=server.base)
    monkeypatch.setenv("CITYSCAPES_USERNAME", "alice")
    with pytest.raises(FetchError, match="CITYSCAPES_PASSWORD is not set"):
        fetch_cityscapes(tmp_path / "cs", options=fast, base_url=server.base)


def test_cityscapes_from_file_right_and_corrupt(tmp_path: Path, fast: FetchOptions) -> None:
    good = tmp_path / "dl" / "gtFine_trainvaltest.zip"
    good.parent.mkdir()
    good.write_bytes(GTFINE)
    folder = fetch_cityscapes(tmp_path / "cs", options=fast, packages=("gtFine_trainvaltest.zip",),
                              from_files=[good], base_url="http://127.0.0.1:9")  # no login needed
    assert (folder / "gtFine/train/aachen").is_dir()
    assert read_manifest(folder)["gtFine_trainvaltest.zip"] == sha256(GTFINE)
    corrupt = bytearray(GTFINE)
    corrupt[60] ^= 0xFF  # inside the first member's compressed data
    bad = tmp_path / "dl2" / "gtFine_trainvaltest.zip"
    bad.parent.mkdir()
    bad.write_bytes(bytes(corrupt))
    with pytest.raises(FetchError, match="gtFine_trainvaltest.zip"):
        fetch_cityscapes(tmp_path / "cs2", options=fast, packages=("gtFine_trainvaltest.zip",), from_files=[bad])
    assert not (tmp_path / "cs2" / "gtFine_trainvaltest.zip").exists()
    with pytest.raises(FetchError, match="expected one of the packages"):
        fetch_cityscapes(tmp_path / "cs3", options=fast, from_files=[tmp_path / "dl" / "gtFine_trainvaltest.zip"],
                         packages=("camera_trainvaltest.zip",))


def test_taskonomy_from_an_archive_of_the_sample(
    tmp_path: Path, server: LoopbackServer, fast: FetchOptions, taskonomy_remote
) -> None:
    import tarfile

    remote, lists, template = taskonomy_remote
    archive = tmp_path / "sample.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(remote / "rgb", arcname="taskonomy-sample-model-1/rgb")
    folder = fetch_taskonomy(tmp_path / "raw", options=fast, domains=("rgb",), from_files=[archive],
                             url_template=template)
    assert image_gets(server) == 0
    name = lists["val"][0].format(domain="rgb")
    assert (folder / name).read_bytes() == (remote / name).read_bytes()
    assert not (folder / ".from-file.tmp").exists()
