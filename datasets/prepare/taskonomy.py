"""Taskonomy sample building -> the translation layout, files unchanged.

CEN's preprocessing (log depth, fixed maxima, 8-bit quantisation) happens in the loader
(`asymfusion.datasets.translation`), so preparing keeps Taskonomy's names and encodings. It

* reads CEN's lists (`train_domain.txt`, 1,000 viewpoints; `val_domain.txt`, 500), whose lines are templates
  `{domain}/point_P_view_V_domain_{domain}.png`;
* checks that every listed file of every requested domain exists, decodes, has its domain's encoding (RGB8 for
  rgb / normal / principal_curvature, 8-bit for reshading, single-channel 16-bit for the depth and edge domains)
  and that all domains of a viewpoint have one size;
* links (hard link, else copy; or a symlink / a copy on request) the files into `<out>/<domain>/` unless `out` is the
  raw folder itself, and writes `<out>/train.txt` / `<out>/val.txt` and `<out>/layout.json`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from asymfusion.datasets.fetch import read_manifest, read_templates
from asymfusion.datasets.formats import TRANSLATION_DOMAINS, DataFormatError, read_png, write_list
from asymfusion.datasets.prepare.common import progress, write_layout_info
from asymfusion.datasets.files import atomic_write

LISTS = {"train": "train_domain.txt", "val": "val_domain.txt"}
EXPECTED_COUNTS = {"train": 1000, "val": 500}
RGB8_DOMAINS = frozenset({"rgb", "normal", "principal_curvature"})
GRAY8_DOMAINS = frozenset({"reshading"})
UINT16_DOMAINS = frozenset({"depth_zbuffer", "depth_euclidean", "edge_texture", "edge_occlusion"})
LINK_MODES = ("hardlink", "symlink", "copy")


def check_file(path: Path, domain: str) -> tuple[int, int]:
    """Decode one Taskonomy PNG and check its encoding; returns (height, width)."""
    array = read_png(path)
    if domain in UINT16_DOMAINS:
        ok = array.dtype == np.uint16 and array.ndim == 2
        want = "single-channel 16-bit"
    elif domain in RGB8_DOMAINS:
        ok = array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3
        want = "8-bit RGB"
    elif domain in GRAY8_DOMAINS:
        ok = array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3))
        want = "8-bit grey or RGB"
    else:
        raise ValueError(f"unknown Taskonomy domain {domain!r}; allowed: {', '.join(TRANSLATION_DOMAINS)}")
    if not ok:
        shape = "x".join(map(str, array.shape))
        raise DataFormatError(f"{path}: expected a {want} PNG for {domain}, got {array.dtype} {shape}")
    return array.shape[0], array.shape[1]


def _place(src: Path, dst: Path, mode: str) -> None:
    if dst.exists() or dst.is_symlink():
        if dst.exists() and os.path.samefile(src, dst):
            return
        dst.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        dst.symlink_to(src.resolve())
        return
    if mode == "hardlink":
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system: fall back to a copy
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def prepare_taskonomy(
    raw: str | Path,
    out: str | Path,
    *,
    domains: Sequence[str] = TRANSLATION_DOMAINS,
    link: str = "hardlink",
    expected: dict[str, int] | None = EXPECTED_COUNTS,
    splits: Sequence[str] = ("train", "val"),
    progress_bar: bool = True,
) -> dict[str, Any]:
    """Validate the listed files of `domains` in `raw`, place them in `out`, write the template lists.

    `splits` limits the work to some of the lists (e.g. only `val` for an evaluation box).
    """
    raw, out = Path(raw), Path(out)
    if link not in LINK_MODES:
        raise ValueError(f"link must be one of {LINK_MODES}, got {link!r}")
    unknown = [d for d in domains if d not in TRANSLATION_DOMAINS]
    if unknown:
        raise ValueError(f"unknown Taskonomy domain(s) {unknown}; allowed: {', '.join(TRANSLATION_DOMAINS)}")
    unknown_splits = [s for s in splits if s not in LISTS]
    if unknown_splits or not splits:
        raise ValueError(f"splits must be a non-empty subset of {list(LISTS)}, got {list(splits)}")
    templates = {split: read_templates(raw / LISTS[split]) for split in splits}
    if expected is not None:
        for split, want in expected.items():
            if split not in templates:
                continue
            if len(templates[split]) != want:
                raise DataFormatError(f"{raw / LISTS[split]}: {len(templates[split])} viewpoints, expected {want}")
    overlap = set(templates.get("train", ())) & set(templates.get("val", ()))
    if overlap:
        raise DataFormatError(f"{len(overlap)} viewpoint(s) are in both lists, e.g. {sorted(overlap)[0]}")
    in_place = out.resolve() == raw.resolve()
    every = [t for split in splits for t in templates[split]]
    missing = [raw / t.format(domain=d) for t in every for d in domains if not (raw / t.format(domain=d)).is_file()]
    if missing:
        shown = "\n  ".join(str(p) for p in missing[:5])
        raise DataFormatError(
            f"{len(missing)} listed Taskonomy file(s) are missing, e.g.:\n  {shown}\n"
            "(run `asymfusion fetch taskonomy` with these domains first)"
        )
    sizes: set[tuple[int, int]] = set()
    for template in progress(every, len(every), "taskonomy", progress_bar):
        shape = None
        for domain in domains:
            name = template.format(domain=domain)
            src = raw / name
            hw = check_file(src, domain)
            if shape is not None and hw != shape:
                raise DataFormatError(
                    f"{src}: {hw[1]}x{hw[0]}, but other domains of this viewpoint are {shape[1]}x{shape[0]}"
                )
            shape = hw
            if not in_place:
                _place(src, out / name, link)
        if shape is not None:
            sizes.add(shape)
    for split, rows in templates.items():
        write_list(out / f"{split}.txt", rows)
    manifest = read_manifest(raw)
    summary = {
        "source": "taskonomy",
        "building": "cauthron (alexsax/taskonomy-sample-model-1)",
        "train": len(templates.get("train", ())),
        "val": len(templates.get("val", ())),
        "domains": list(domains),
        "sizes": sorted(f"{w}x{h}" for h, w in sizes),
        "encodings": "unchanged Taskonomy PNGs: depth_* uint16 in 1/512 m (65535 = invalid), edge_* uint16, "
        "rgb / normal / principal_curvature RGB8, reshading 8-bit; CEN's preprocessing is done by the loader",
        "files": "in place" if in_place else f"{link} from {raw}",
        "lists": {split: manifest.get(LISTS[split]) for split in splits},
    }
    write_layout_info(out, summary)
    return summary
