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

__all__ = ["add_fetch_parser", "add_prepare_parsers", "add_standins_parser", "cmd_fetch", "cmd_prepare",
           "cmd_prepare_hha", "cmd_standins"]

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
    if args.stand_in and args.from_file:
        args.fetch_parser.error("--stand-in places every file of its folder: give it without --from-file")
    folder = fetch(args.source, _data_dir(args), options=options, from_files=args.from_file,
                   stand_in=args.stand_in, **extra)
    print(f"fetched {args.source} into {folder} (sha256 of every file in {folder / 'SHA256SUMS'})")
    if args.stand_in:
        print(f"  STAND-IN files from {args.stand_in}, not the published data: for rehearsals only; every result "
              "computed on them says so")
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
    p.add_argument("--stand-in", default=None, metavar="DIR",
                   help="place the stand-in files `asymfusion standins SOURCE --out DIR` wrote (noise in the real "
                        "formats, for rehearsals), verified against the hashes recorded there; never real data")
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
    from asymfusion.datasets.standins import MARKER, StandInMix, mark_stand_in

    # Stand-in raw files (fetch --stand-in) make a stand-in layout, marked before anything is written into it;
    # only their counts differ from the real set's, so the count check is the one thing skipped.
    stand_in = (raw / MARKER).is_file()
    extra: dict[str, object] = {"expected": None} if stand_in else {}
    if stand_in:
        mark_stand_in(out, f"{args.source} layout prepared from the stand-in files in {raw}")
    elif (out / MARKER).is_file():
        raise StandInMix(f"{out} holds a stand-in layout ({MARKER}) and {raw} real files: remove {out} first, "
                         "real data never goes beside stand-ins")
    if args.source == "nyudv2":
        summary = prepare.prepare_nyudv2(raw, out, depth=args.depth, progress_bar=show, **extra)
    elif args.source == "cityscapes":
        summary = prepare.prepare_cityscapes(raw, out, depth_scale=args.depth_scale, progress_bar=show, **extra)
    else:
        summary = prepare.prepare_taskonomy(raw, out, domains=args.domains, link=args.link, progress_bar=show,
                                            **extra)
    kind = "STAND-IN layout" if stand_in else "layout"
    print(f"wrote {kind} {out}: {summary['train']} train / {summary['val']} val (details in {out / 'layout.json'})")
    return 0


def cmd_prepare_hha(args: argparse.Namespace) -> int:
    from asymfusion.datasets.prepare.hha import write_hha_layout

    if args.camera == "cityscapes" and args.raw is None:
        args.hha_parser.error("--camera cityscapes reads each frame's camera json: give --raw <data>/raw/cityscapes")
    if not (Path(args.layout) / "train.txt").is_file():
        args.hha_parser.error(f"--layout {args.layout}: no train.txt there (a layout written by `prepare`)")

    summary = write_hha_layout(args.layout, args.out, camera=args.camera, depth_scale=args.depth_scale,
                               raw=args.raw, workers=args.workers, progress_bar=not args.no_progress)
    print(f"wrote {summary['frames']} HHA images to {args.out} in {summary['seconds']} s "
          f"({summary['seconds_per_frame_hha']} s per frame for the encoding)")
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

    from asymfusion.datasets.prepare.hha import CAMERAS

    p = prepare_sources.add_parser(
        "hha", help="a segmentation layout's depth -> HHA images (Gupta et al. 2014) for data.depth_encoding: hha",
        description="Writes <out>/NNNNNN.png (disparity, height above the floor, angle with gravity) for every "
                    "frame of a prepared segmentation layout, and <out>/hha.json with each frame's camera. "
                    "The pipeline's hha-<dataset> stage runs it for every dataset an experiment reads as HHA.")
    p.add_argument("--layout", required=True, metavar="DIR", help="the prepared segmentation layout (train.txt, "
                   "val.txt, depth/)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write (replaced only once complete)")
    p.add_argument("--camera", required=True, choices=CAMERAS,
                   help="where each frame's intrinsics come from: the NYU Kinect, the Cityscapes camera json "
                        "files (--raw), or the procedural renderer's own camera")
    p.add_argument("--depth-scale", type=_positive_float, required=True, metavar="S",
                   help="depth PNG value = metres x S (the dataset's depth_scale: 5000 NYUDv2/synthetic, 256 "
                        "Cityscapes)")
    p.add_argument("--raw", default=None, metavar="DIR", help="Cityscapes only: the raw folder with camera/")
    p.add_argument("--workers", type=int, default=1, choices=range(1, 65), metavar="{1..64}",
                   help="processes (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare_hha, source="hha", hha_parser=p)


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _size(text: str) -> tuple[int, int]:
    """argparse type: WxH in pixels, each side 8..8192."""
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match or not all(8 <= int(v) <= 8192 for v in match.groups()):
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT with each side in 8..8192 (e.g. 640x480)")
    return int(match[1]), int(match[2])


def cmd_standins(args: argparse.Namespace) -> int:
    from asymfusion.datasets.standins import REAL_SIZES, write_standin_weights, write_standins

    out = Path(args.out)
    if args.source == "weights":
        if not args.backbone:
            args.standins_parser.error("standins weights needs --backbone NAME (a timm model name)")
        if out.exists() and not (out.parent / "STAND-IN.txt").is_file():
            args.standins_parser.error(f"--out {out} exists outside a stand-in folder: nothing there is overwritten")
        import timm

        if not timm.is_model(args.backbone):
            args.standins_parser.error(f"--backbone {args.backbone!r} is not a timm model (timm.list_models())")
        write_standin_weights(args.backbone, out)
        print(f"wrote STAND-IN weights (random init, not pretrained) for {args.backbone} to {out}")
        return 0
    if args.backbone:
        args.standins_parser.error("--backbone applies to `standins weights` only")
    if out.exists() and any(out.iterdir()) and not (out / "STAND-IN.txt").is_file():
        args.standins_parser.error(f"--out {out} is a non-empty folder without stand-ins: nothing there is overwritten")
    if args.source == "taskonomy" and args.size and args.size[0] != args.size[1]:
        args.standins_parser.error(f"--size {args.size[0]}x{args.size[1]}: Taskonomy views are square")
    given = write_standins(args.source, out, size=args.size, n_train=args.n_train, n_val=args.n_val, seed=args.seed)
    w, h = args.size or REAL_SIZES[args.source]
    print(f"wrote STAND-IN {args.source} files ({args.n_train} train / {args.n_val} val, {w}x{h}, noise) into {out}")
    print(f"next: asymfusion fetch {args.source} --stand-in {out} --data-dir DIR   (never your real data directory)")
    return 0 if given else 1


def add_standins_parser(verbs: argparse._SubParsersAction) -> None:
    """Add `standins {nyudv2,cityscapes,taskonomy}`: stand-in raw files in the real formats, for rehearsals."""
    p = verbs.add_parser(
        "standins",
        help="write stand-in raw files (noise in each dataset's real formats and sizes) for rehearsals",
        description="Write what `fetch SOURCE --stand-in DIR` places: the NYUDv2 v7.3 .mat + splits + class map, "
                    "the four Cityscapes package zips, or a Taskonomy sample tree with its lists. Not real data: "
                    "the folder holds STAND-IN.txt, and results computed on them say so (docs/paper-suite.md).",
    )
    p.add_argument("source", choices=["nyudv2", "cityscapes", "taskonomy", "weights"],
                   help="which dataset's formats, or `weights`: a backbone's weight file (random init)")
    p.add_argument("--out", required=True, metavar="PATH",
                   help="folder to write (weights: the .pth file; created; never a real data folder)")
    p.add_argument("--backbone", default=None, metavar="NAME", help="weights only: the timm model name")
    p.add_argument("--size", type=_size, default=None, metavar="WxH",
                   help="image size (default: the real one: nyudv2 640x480, cityscapes 2048x1024, taskonomy 512x512)")
    p.add_argument("--n-train", type=int, default=2, choices=range(1, 1001), metavar="{1..1000}",
                   help="training images (default: 2)")
    p.add_argument("--n-val", type=int, default=1, choices=range(1, 1001), metavar="{1..1000}",
                   help="validation (NYUDv2: test) images (default: 1)")
    p.add_argument("--seed", type=int, default=0, choices=range(0, 2**16), metavar="{0..65535}",
                   help="noise seed (default: 0)")
    p.set_defaults(func=cmd_standins, standins_parser=p)
