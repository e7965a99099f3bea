"""Stand-in raw files go through the real fetch and prepare code, and never mix with real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asymfusion.benchmark.cli import main
from asymfusion.datasets.standins import MARKER, STANDIN_MANIFEST


def _run(*argv: str) -> int:
    return main(list(argv))


@pytest.mark.parametrize("source,size,n_train,n_val", [("nyudv2", "64x48", 4, 2), ("cityscapes", "64x32", 3, 1),
                                                       ("taskonomy", "32x32", 2, 2)])
def test_stand_ins_are_fetched_verified_and_prepared_into_a_marked_layout(
        source: str, size: str, n_train: int, n_val: int, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    standins, data = tmp_path / "standins", tmp_path / "data"
    assert _run("standins", source, "--out", str(standins), "--size", size, "--n-train", str(n_train),
                "--n-val", str(n_val)) == 0
    manifest = json.loads((standins / STANDIN_MANIFEST).read_text())
    assert manifest["source"] == source and manifest["sha256"] and (standins / MARKER).is_file()
    assert _run("fetch", source, "--stand-in", str(standins), "--data-dir", str(data), "--no-progress") == 0
    assert (data / "raw" / source / MARKER).is_file()
    assert _run("prepare", source, "--data-dir", str(data), "--no-progress") == 0
    layout = data / source
    assert (layout / MARKER).is_file()
    assert "STAND-IN" in capsys.readouterr().out
    rows = {split: (layout / f"{split}.txt").read_text().splitlines() for split in ("train", "val")}
    assert (len(rows["train"]), len(rows["val"])) == (n_train, n_val)
    summary = json.loads((layout / "layout.json").read_text())
    assert (summary["train"], summary["val"]) == (n_train, n_val)


def test_a_stand_in_whose_file_changed_after_writing_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    standins = tmp_path / "standins"
    assert _run("standins", "nyudv2", "--out", str(standins), "--size", "32x24") == 0
    with open(standins / "splits.mat", "ab") as handle:
        handle.write(b"x")
    assert _run("fetch", "nyudv2", "--stand-in", str(standins), "--data-dir", str(tmp_path / "d"),
                "--no-progress") == 1
    err = capsys.readouterr().err
    assert "splits.mat" in err and "sha256" in err
    assert not (tmp_path / "d" / "raw" / "nyudv2" / "splits.mat").exists()


def test_stand_ins_and_real_files_never_share_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    standins, data = tmp_path / "standins", tmp_path / "data"
    assert _run("standins", "nyudv2", "--out", str(standins), "--size", "32x24") == 0
    real = data / "raw" / "nyudv2"
    real.mkdir(parents=True)
    (real / "nyu_depth_v2_labeled.mat").write_bytes(b"the user's real download")
    assert _run("fetch", "nyudv2", "--stand-in", str(standins), "--data-dir", str(data), "--no-progress") == 2
    assert "holds real files" in capsys.readouterr().err
    assert (real / "nyu_depth_v2_labeled.mat").read_bytes() == b"the user's real download"
    other = tmp_path / "other"
    assert _run("fetch", "nyudv2", "--stand-in", str(standins), "--data-dir", str(other), "--no-progress") == 0
    # a real fetch into the stand-in folder is refused before any download
    assert _run("fetch", "nyudv2", "--data-dir", str(other), "--no-progress", "--retries", "0") == 2
    assert "holds stand-in files" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["standins", "nyudv2", "--size", "640"], "not WIDTHxHEIGHT"),
    (["standins", "taskonomy", "--size", "64x32"], "square"),
    (["standins", "nyudv2", "--n-train", "0"], "invalid choice"),
    (["standins", "weights"], "--backbone"),
    (["standins", "weights", "--backbone", "no-such-net"], "not a timm model"),
    (["standins", "nyudv2", "--backbone", "resnet18"], "applies to `standins weights` only"),
])
def test_bad_standins_arguments_exit_2_naming_the_option(argv: list[str], message: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _run(*argv, "--out", str(tmp_path / "out"))
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_standins_never_write_into_a_non_empty_folder_of_other_files(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(SystemExit) as exit_info:
        _run("standins", "nyudv2", "--out", str(tmp_path))
    assert exit_info.value.code == 2 and (tmp_path / "mine.txt").read_text() == "keep"
