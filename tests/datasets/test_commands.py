"""The `fetch` verb and the `prepare` sources, as benchmark/cli.py wires them."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import pytest

from asymfusion.datasets import fetch as fetch_mod
from asymfusion.datasets.commands import add_fetch_parser, add_prepare_parsers
from asymfusion.datasets.fetch import Artifact, FetchError
from asymfusion.datasets.formats import DataFormatError

from .fixtures import write_nyu_raw
from .server import LoopbackServer


def build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asymfusion")
    verbs = parser.add_subparsers(dest="verb", required=True)
    add_fetch_parser(verbs)
    prepare = verbs.add_parser("prepare")
    sources = prepare.add_subparsers(dest="source", required=True)
    sources.add_parser("synthetic")
    add_prepare_parsers(sources)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_has_a_help_line() -> None:
    verbs = _subparsers(build())
    parsers = [verbs["fetch"], *(p for name, p in _subparsers(verbs["prepare"]).items() if name != "synthetic")]
    assert len(parsers) == 5  # fetch; prepare nyudv2, cityscapes, taskonomy, hha
    for p in parsers:
        for action in p._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"{p.prog}: {action.option_strings or action.dest} has no help"
    fetch_help = verbs["fetch"].format_help()
    assert "{nyudv2,cityscapes,taskonomy,inception}" in fetch_help and "--from-file" in fetch_help
    assert "ASYMFUSION_DATA" in fetch_help


def test_fetch_defaults_and_source_specific_options(monkeypatch: pytest.MonkeyPatch) -> None:
    args = build().parse_args(["fetch", "taskonomy", "--domains", "rgb", "reshading"])
    assert args.data_dir is None and args.from_file == [] and args.domains == ["rgb", "reshading"]
    assert callable(args.func)
    bad = build().parse_args(["fetch", "nyudv2", "--packages", "camera_trainvaltest.zip"])
    with pytest.raises(SystemExit) as info:
        bad.func(bad)
    assert info.value.code == 2


def test_fetch_from_wrong_file_raises_fetch_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    wrong.write_bytes(b"not the weights")
    args = build().parse_args(["fetch", "inception", "--data-dir", str(tmp_path / "data"), "--from-file", str(wrong)])
    with pytest.raises(FetchError) as info:
        args.func(args)
    message = str(info.value)
    assert str(wrong) in message and "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2" in message
    assert "95,628,359 bytes" in message
    assert not (tmp_path / "data" / "weights" / wrong.name).exists()


def test_fetch_command_end_to_end(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = b"inception weights stand-in" * 100
    server.files["/w.pth"] = data
    digest = hashlib.sha256(data).hexdigest()
    art = Artifact("w.pth", server.url("/w.pth"), size=len(data), sha256=digest, provenance="t")
    monkeypatch.setattr(fetch_mod, "INCEPTION_ARTIFACTS", (art,))
    monkeypatch.setenv("ASYMFUSION_DATA", str(tmp_path / "envdata"))
    args = build().parse_args(["fetch", "inception", "--no-progress", "--retries", "0"])
    assert args.func(args) == 0
    assert (tmp_path / "envdata" / "weights" / "w.pth").read_bytes() == data
    assert "fetched inception" in capsys.readouterr().out


def test_prepare_commands_use_the_data_dir_and_name_bad_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ASYMFUSION_DATA", str(tmp_path / "data"))
    write_nyu_raw(tmp_path / "data" / "raw" / "nyudv2")
    args = build().parse_args(["prepare", "nyudv2", "--no-progress"])
    assert args.raw is None and args.depth == "filled"
    with pytest.raises(DataFormatError, match="expected 1449"):  # the real set's counts are enforced
        args.func(args)
    args = build().parse_args(["prepare", "cityscapes", "--data-dir", str(tmp_path / "other")])
    with pytest.raises(DataFormatError, match=str(tmp_path / "other" / "raw" / "cityscapes")):
        args.func(args)
    args = build().parse_args(["prepare", "taskonomy", "--raw", str(tmp_path / "nowhere"), "--no-progress"])
    with pytest.raises(DataFormatError, match="train_domain.txt"):
        args.func(args)
    assert build().parse_args(["prepare", "cityscapes"]).depth_scale == 256.0
