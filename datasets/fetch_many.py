"""Several files of one source into one folder (`fetch nyudv2`, `fetch inception`, the Taskonomy lists).

`--from-file` paths are matched to the source's artifacts (by file name, else by exact size); then every artifact
that can be placed is placed - the verified `--from-file` copies first, then the downloads - and only then one
`FetchError` lists every artifact that failed, each with its reason and the `--from-file` hint. So an offline
machine given copies of some files places those even when another file cannot be downloaded. A `--from-file` copy
that does not verify is an error of its artifact (in the same list) and is not placed. Each file goes through
`asymfusion.datasets.download.fetch_artifact`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from asymfusion.datasets.artifacts import MANIFEST, Artifact, FetchError, FetchInputError
from asymfusion.datasets.diskspace import ensure_free_space
from asymfusion.datasets.download import FetchOptions, fetch_artifact

__all__: list[str] = []


def _assign_from_files(
    artifacts: Sequence[Artifact], from_files: Iterable[str | Path], source: str
) -> dict[str, Path]:
    """Match `--from-file` paths to artifacts: by file name, else by exact size."""
    out: dict[str, Path] = {}
    for raw in from_files:
        path = Path(raw).expanduser()
        if not path.is_file():
            raise FetchInputError(f"--from-file {path}: no such file")
        match = [a for a in artifacts if a.basename == path.name]
        if not match:
            size = path.stat().st_size
            match = [a for a in artifacts if a.size == size]
        if len(match) != 1:
            names = ", ".join(a.basename for a in artifacts)
            raise FetchInputError(
                f"--from-file {path}: cannot tell which {source} file it is; expected one of: {names}"
            )
        name = match[0].name
        if name in out and out[name].resolve() != path.resolve():
            raise FetchInputError(f"--from-file given twice for {source} file {match[0].basename}: {out[name]} and "
                                  f"{path}; give one copy")
        out[name] = path
    return out


def _fetch_all(
    artifacts: Sequence[Artifact], folder: Path, source: str, options: FetchOptions, from_files: Iterable[str | Path]
) -> list[Path]:
    """Place every artifact that can be placed (verified --from-file copies first, then downloads); then raise one
    FetchError listing every artifact that failed."""
    assigned = _assign_from_files(artifacts, from_files, source)
    missing = [a for a in artifacts if not (folder / a.name).is_file()]
    ensure_free_space(folder, sum(a.size or 0 for a in missing), f"the {len(missing)} {source} file(s) to fetch")
    placed: dict[str, Path] = {}
    failed: list[tuple[Artifact, FetchError]] = []
    for a in sorted(artifacts, key=lambda a: a.name not in assigned):  # stable: --from-file copies first
        try:
            placed[a.name] = fetch_artifact(a, folder, source=source, options=options, from_file=assigned.get(a.name))
        except FetchError as exc:
            failed.append((a, exc))
    if not failed:
        return [placed[a.name] for a in artifacts]
    if len(artifacts) == 1:
        raise failed[0][1]
    lines = []
    for a, exc in failed:
        reason = str(exc).strip().replace("\n", "\n      ")
        hint = f"asymfusion fetch {source} --from-file PATH/{a.basename}"
        if hint not in reason:
            reason += f"\n      To use a copy obtained another way: {hint}"
        lines.append(f"  - {a.basename}: {reason}")
    done = f"; the other {len(placed)} were placed, verified and recorded in {MANIFEST}" if placed else ""
    kind = FetchInputError if all(isinstance(exc, FetchInputError) for _, exc in failed) else FetchError
    raise kind(
        f"could not fetch {len(failed)} of {len(artifacts)} {source} file(s) into {folder}{done}:\n"
        + "\n".join(lines)
        + "\nRun the same command again to retry (downloads resume), giving --from-file for the files above "
        "that you obtained another way."
    ) from failed[0][1]
