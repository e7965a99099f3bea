"""The `fetch` verb and the `prepare nyudv2|cityscapes|taskonomy` sources of the `asymfusion` command line.

benchmark/cli.py calls `add_fetch_parser(verbs)` and `add_prepare_parsers(prepare_sources)`; each sub-command sets
`func` to a handler that takes the parsed arguments and returns an exit code. Handlers raise
`asymfusion.datasets.formats.DataFormatError` for a bad or missing data file and
`asymfusion.datasets.fetch.FetchError` for a failed download (both mean exit 1).

    asymfusion fetch nyudv2                               # -> <data>/raw/nyudv2
    asymfusion fetch nyudv2 --from-file ~/nyu_depth_v2_labeled.mat
    asymfusion prepare nyudv2                             # <data>/raw/nyudv2 -> <data>/nyudv2
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Callable

from asymfusion.datasets.fetch import (
    CITYSCAPES_PACKAGES,
    DATA_ENV,
    SOURCES,
    TASKONOMY_COMMIT_ENV,
    FetchOptions,
    default_data_dir,
    fetch,
    source_dir,
)
from asymfusion.datasets.formats import TRANSLATION_DOMAINS

__all__ = ["add_fetch_parser", "add_prepare_parsers", "cmd_fetch", "cmd_prepare"]

DATA_DIR_HELP = f"data directory (default: ${DATA_ENV}, else ./data)"
# Options that apply to one source only: (option dest, its source, its default).
SOURCE_OPTIONS = {
    "domains": ("taskonomy", None),
    "commit": ("taskonomy", None),
    "packages": ("cityscapes", None),
    "no_extract": ("cityscapes", False),
}


def _seconds(low: float, high: float, open_low: bool) -> Callable[[str], float]:
    """argparse type: a number of seconds in (low, high] or [low, high]; argparse exits 2 naming the option."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not (low < value if open_low else low <= value) or value > high or value != value:
            bracket = "(" if open_low else "["
            raise argparse.ArgumentTypeError(f"{text} is outside {bracket}{low:g}, {high:g}] seconds")
        return value

    return parse


def _commit(text: str) -> str:
    """argparse type: a full 40-hex-digit git commit (the URL pins exactly one tree)."""
    if not re.fullmatch(r"[0-9a-f]{40}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a full git commit (40 lower-case hex digits)")
    return text


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir) if args.data_dir else default_data_dir()


def cmd_fetch(args: argparse.Namespace) -> int:
    for dest, (source, default) in SOURCE_OPTIONS.items():
        if getattr(args, dest) != default and args.source != source:
            option = "--" + dest.replace("_", "-")
            args.fetch_parser.error(f"{option} applies to `fetch {source}` only")
    options = FetchOptions(
        retries=args.retries, backoff=args.backoff, timeout=args.timeout, progress=not args.no_progress, jobs=args.jobs
    )
    extra: dict[str, object] = {}
    if args.source == "taskonomy":
        extra = {"domains": args.domains or list(TRANSLATION_DOMAINS), "commit": args.commit}
    elif args.source == "cityscapes":
        extra = {"packages": args.packages or list(CITYSCAPES_PACKAGES), "extract": not args.no_extract}
    folder = fetch(args.source, _data_dir(args), options=options, from_files=args.from_file, **extra)
    print(f"fetched {args.source} into {folder} (sha256 of every file in {folder / 'SHA256SUMS'})")
    if args.source != "inception":
        print(f"next: asymfusion prepare {args.source}" + (f" --data-dir {args.data_dir}" if args.data_dir else ""))
    return 0


def add_fetch_parser(verbs: argparse._SubParsersAction) -> None:
    """Add `fetch {nyudv2,cityscapes,taskonomy,inception}` to the top-level verbs."""
    p = verbs.add_parser(
        "fetch",
        help="download a dataset (or the FID/KID Inception weights), verified, into the data directory",
        description=(
            "Download into <data>/raw/<source> (Inception: <data>/weights) with resume, retries and checksum "
            "verification; a file that does not verify is never placed. See docs/data.md."
        ),
    )
    p.add_argument("source", choices=SOURCES, help="what to fetch")
    p.add_argument("--data-dir", default=None, metavar="DIR", help=DATA_DIR_HELP)
    p.add_argument(
        "--from-file",
        action="append",
        default=[],
        metavar="PATH",
        help="place a file downloaded by other means instead of downloading it (verified the same way; repeatable; "
        "taskonomy: also a folder or archive holding a copy of the sample repository)",
    )
    p.add_argument("--retries", type=int, default=4, choices=range(0, 21), metavar="{0..20}",
                   help="retries after a failed attempt (default: 4)")
    p.add_argument("--backoff", type=_seconds(0.0, 3600.0, open_low=False), default=1.0, metavar="SECONDS",
                   help="seconds before the first retry; doubles on every retry (default: 1)")
    p.add_argument("--timeout", type=_seconds(0.0, 3600.0, open_low=True), default=60.0, metavar="SECONDS",
                   help="seconds without data before an attempt fails (default: 60)")
    p.add_argument("--jobs", type=int, default=8, choices=range(1, 65), metavar="{1..64}",
                   help="parallel file downloads (taskonomy; default: 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--domains", nargs="+", choices=TRANSLATION_DOMAINS, default=None, metavar="DOMAIN",
                   help=f"taskonomy only: domains to download, of {', '.join(TRANSLATION_DOMAINS)} "
                        "(default: all eight)")
    p.add_argument("--commit", type=_commit, default=None, metavar="SHA",
                   help="taskonomy only: one commit of alexsax/taskonomy-sample-model-1 for every domain (default: "
                        f"the per-domain pins in datasets/fetch.py, or ${TASKONOMY_COMMIT_ENV})")
    p.add_argument("--packages", nargs="+", choices=CITYSCAPES_PACKAGES, default=None, metavar="PACKAGE",
                   help=f"cityscapes only: packages to download, of {', '.join(CITYSCAPES_PACKAGES)} "
                        "(default: all four)")
    p.add_argument("--no-extract", action="store_true", help="cityscapes only: keep the zips, do not extract them")
    p.set_defaults(func=cmd_fetch, fetch_parser=p)


def cmd_prepare(args: argparse.Namespace) -> int:
    from asymfusion.datasets import prepare

    data = _data_dir(args)
    raw = Path(args.raw) if args.raw else source_dir(data, args.source)
    out = Path(args.out) if args.out else data / args.source
    show = not args.no_progress
    if args.source == "nyudv2":
        summary = prepare.prepare_nyudv2(raw, out, depth=args.depth, progress_bar=show)
    elif args.source == "cityscapes":
        summary = prepare.prepare_cityscapes(raw, out, depth_scale=args.depth_scale, progress_bar=show)
    else:
        summary = prepare.prepare_taskonomy(raw, out, domains=args.domains, link=args.link, progress_bar=show)
    print(f"wrote {out}: {summary['train']} train / {summary['val']} val (details in {out / 'layout.json'})")
    return 0


def _common_prepare_options(p: argparse.ArgumentParser, source: str) -> None:
    p.add_argument("--data-dir", default=None, metavar="DIR", help=DATA_DIR_HELP)
    p.add_argument("--raw", default=None, metavar="DIR",
                   help=f"folder `fetch {source}` wrote (default: <data>/raw/{source})")
    p.add_argument("--out", default=None, metavar="DIR", help=f"layout folder to write (default: <data>/{source})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare, source=source)


def add_prepare_parsers(prepare_sources: argparse._SubParsersAction) -> None:
    """Add `nyudv2`, `cityscapes` and `taskonomy` under `asymfusion prepare`."""
    p = prepare_sources.add_parser(
        "nyudv2", help="NYUDv2 labeled .mat -> segmentation layout (40 classes, depth uint16 m x 5000)"
    )
    _common_prepare_options(p, "nyudv2")
    p.add_argument("--depth", choices=["filled", "raw"], default="filled",
                   help="'filled': the in-painted `depths` (default); 'raw': `rawDepths`, holes stay 0")

    p = prepare_sources.add_parser(
        "cityscapes", help="Cityscapes packages -> segmentation layout (19 train ids, depth from disparity)"
    )
    _common_prepare_options(p, "cityscapes")
    p.add_argument("--depth-scale", type=float, default=256.0,
                   help="depth PNG value = metres x this (default: 256, i.e. up to 256 m; written to layout.json)")

    p = prepare_sources.add_parser(
        "taskonomy", help="Taskonomy sample files + CEN lists -> translation layout (files unchanged)"
    )
    _common_prepare_options(p, "taskonomy")
    p.add_argument("--domains", nargs="+", choices=TRANSLATION_DOMAINS, default=list(TRANSLATION_DOMAINS),
                   metavar="DOMAIN", help=f"domains to check and place, of {', '.join(TRANSLATION_DOMAINS)} "
                                          "(default: all eight)")
    p.add_argument("--link", choices=["hardlink", "symlink", "copy"], default="hardlink",
                   help="how files get into the layout (default: hardlink, a copy across file systems)")
