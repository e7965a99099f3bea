"""`asymfusion fetch cityscapes`: the login-gated Cityscapes packages.

Cityscapes cannot go through the plain resumable downloader: its packages need an account. They are downloaded
through `cityscapesscripts` (which checks the md5 the server publishes) after a non-interactive login with
`CITYSCAPES_USERNAME` / `CITYSCAPES_PASSWORD` or cityscapesscripts' own credentials file; `--from-file` zips are
CRC-checked instead. See docs/data.md for the packages and the terms of use.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

import requests

from asymfusion.datasets import download
from asymfusion.datasets.archive import extract_archive
from asymfusion.datasets.artifacts import FetchError, FetchInputError, file_digests, read_manifest, record_manifest
from asymfusion.datasets.diskspace import ensure_free_space
from asymfusion.datasets.download import PART_SUFFIX, FetchOptions
from asymfusion.datasets.sources import (
    CITYSCAPES_PACKAGES,
    CITYSCAPES_PASSWORD_ENV,
    CITYSCAPES_URL,
    CITYSCAPES_USER_ENV,
)

__all__ = ["cityscapes_credentials", "cityscapes_credentials_file", "cityscapes_login", "fetch_cityscapes"]


def cityscapes_credentials_file() -> Path:
    """cityscapesscripts' own credentials file (`csDownload` offers to store one there)."""
    try:
        import appdirs  # a dependency of cityscapesscripts

        base = Path(appdirs.user_data_dir("cityscapesscripts", "cityscapes"))
    except ImportError:  # pragma: no cover - the Linux location appdirs would give
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "cityscapesscripts"
    return base / "credentials.json"


def cityscapes_credentials() -> tuple[str, str]:
    """(username, password) from the environment, else cityscapesscripts' credentials file; never prompts."""
    user, password = os.environ.get(CITYSCAPES_USER_ENV), os.environ.get(CITYSCAPES_PASSWORD_ENV)
    if user and password:
        return user, password
    if user or password:
        missing = CITYSCAPES_PASSWORD_ENV if user else CITYSCAPES_USER_ENV
        raise FetchError(f"Cityscapes credentials: {missing} is not set (set both, or neither to use the file)")
    path = cityscapes_credentials_file()
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            return str(data["username"]), str(data["password"])
        except (ValueError, KeyError, TypeError) as exc:
            raise FetchError(f"Cityscapes credentials file {path} is unreadable: {exc}") from exc
    raise FetchError(
        "Cityscapes needs an account (register at https://www.cityscapes-dataset.com/register/ and accept its "
        "terms).\n"
        f"Set {CITYSCAPES_USER_ENV} and {CITYSCAPES_PASSWORD_ENV}, or store {path} as "
        '{"username": ..., "password": ...} (mode 0600). No prompt is shown (this may run without a terminal).\n'
        "Or download the packages in a browser and place each with:\n"
        "    asymfusion fetch cityscapes --from-file PATH/<package>.zip"
    )


class _Rebase(requests.adapters.HTTPAdapter):
    """Send requests for `src` to `dst` instead (a mirror, or the loopback server of the tests)."""

    def __init__(self, src: str, dst: str) -> None:
        super().__init__()
        self.src, self.dst = src.rstrip("/"), dst.rstrip("/")

    def send(self, request, **kwargs):  # type: ignore[override]
        if request.url.startswith(self.src):
            request.url = self.dst + request.url[len(self.src) :]
        return super().send(request, **kwargs)


def cityscapes_login(username: str, password: str, *, base_url: str = CITYSCAPES_URL, timeout: float = 60.0):
    """A logged-in `requests.Session` (the same form post as cityscapesscripts, without its prompts)."""
    session = requests.Session()
    if base_url.rstrip("/") != CITYSCAPES_URL:
        session.mount(CITYSCAPES_URL, _Rebase(CITYSCAPES_URL, base_url))
    login = f"{CITYSCAPES_URL}/login"
    try:
        session.get(login, allow_redirects=False, timeout=timeout).raise_for_status()
        response = session.post(
            login,
            data={"username": username, "password": password, "submit": "Login"},
            allow_redirects=False,
            timeout=timeout,
        )
        response.raise_for_status()
    except requests.RequestException as exc:
        raise FetchError(
            f"could not reach {login} to log in: {exc}\n"
            "If this machine is offline, download the packages elsewhere and place each with:\n"
            "    asymfusion fetch cityscapes --from-file PATH/<package>.zip"
        ) from exc
    if response.status_code != 302:
        raise FetchError(f"Cityscapes login at {login} failed (HTTP {response.status_code}, not a redirect): "
                         f"check {CITYSCAPES_USER_ENV} / {CITYSCAPES_PASSWORD_ENV} or {cityscapes_credentials_file()}")
    return session


def _check_zip(path: Path, package: str) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        raise FetchError(f"--from-file {path}: not a readable zip archive for {package}: {exc}") from exc
    if bad is not None:
        raise FetchError(f"--from-file {path}: member {bad!r} fails its CRC check; the archive is corrupt")


def _place_copy(src: Path, final: Path) -> None:
    tmp = final.with_name(final.name + ".copy" + PART_SUFFIX)
    shutil.copyfile(src, tmp)
    os.replace(tmp, final)


def fetch_cityscapes(
    folder: str | Path,
    *,
    options: FetchOptions | None = None,
    from_files: Iterable[str | Path] = (),
    packages: Sequence[str] = CITYSCAPES_PACKAGES,
    extract: bool = True,
    base_url: str = CITYSCAPES_URL,
) -> Path:
    """Download (or place) the Cityscapes packages into `folder` and extract them safely there."""
    options = options or FetchOptions()
    folder = Path(folder)
    given: dict[str, Path] = {}
    for raw in from_files:
        path = Path(raw).expanduser()
        if not path.is_file():
            raise FetchInputError(f"--from-file {path}: no such file")
        if path.name not in packages:
            raise FetchInputError(
                f"--from-file {path}: expected one of the packages {', '.join(packages)} (by file name)")
        if path.name in given and given[path.name].resolve() != path.resolve():
            raise FetchInputError(f"--from-file given twice for {path.name}: {given[path.name]} and {path}; "
                                  "give one copy")
        given[path.name] = path
    ensure_free_space(folder, sum(p.stat().st_size for p in given.values()), "the Cityscapes --from-file copies")
    folder.mkdir(parents=True, exist_ok=True)
    recorded: dict[str, str] = {}
    manifest = read_manifest(folder)
    for package, path in given.items():
        _check_zip(path, package)  # every member's CRC: the server's md5 is only available after a login
        _place_copy(path, folder / package)
        recorded[package] = file_digests(folder / package)[1]
    todo = [p for p in packages if p not in given and not ((folder / p).is_file() and p in manifest)]
    if todo:
        username, password = cityscapes_credentials()
        try:
            from cityscapesscripts.download import downloader as csdownloader
        except ImportError as exc:
            raise FetchError(
                "Cityscapes downloads need the cityscapesscripts package: pip install cityscapesscripts"
            ) from exc
        session = cityscapes_login(username, password, base_url=base_url, timeout=options.timeout)
        try:
            available = {p["name"]: p for p in csdownloader.get_available_packages(session=session)}
        except (requests.RequestException, ValueError) as exc:
            listing = f"{CITYSCAPES_URL}/downloads/?list"
            raise FetchError(f"could not list the Cityscapes packages at {listing}: {exc}") from exc
        missing = [p for p in todo if p not in available]
        if missing:
            raise FetchError(
                f"Cityscapes packages {missing} do not exist or this account has no access to them. "
                "The disparity packages are granted on request: ask the Cityscapes team, then run again."
            )
        staging = folder / ".partial"
        staging.mkdir(exist_ok=True)
        for package in todo:
            recorded[package] = _download_cityscapes_package(
                csdownloader, session, package, available[package]["packageID"], staging, folder, options
            )
        shutil.rmtree(staging, ignore_errors=True)
    record_manifest(folder, recorded)
    if extract:
        for package in packages:
            extract_archive(folder / package, folder)
    return folder


def _download_cityscapes_package(csdownloader, session, package, package_id, staging, folder, options) -> str:
    url = f"{CITYSCAPES_URL}/file-handling/?packageID={package_id}"
    staged = staging / package
    errors: list[str] = []
    for attempt in range(options.retries + 1):
        if attempt:
            # looked up at call time: one retry-pause seam (`download._sleep`) for every fetch path
            download._sleep(min(options.backoff * 2 ** (attempt - 1), options.max_backoff))
        try:
            csdownloader.download_packages(
                session=session, package_names=[package], destination_path=str(staging), resume=staged.exists()
            )
            break
        except requests.RequestException as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # cityscapesscripts raises a bare Exception on an md5 mismatch
            if "MD5" not in str(exc):
                raise FetchError(f"Cityscapes download of {package} ({url}) failed: {exc}") from exc
            expected = session.get(f"{CITYSCAPES_URL}/md5-sum/?packageID={package_id}", timeout=options.timeout)
            size, _, md5 = file_digests(staged) if staged.exists() else (0, "", "")
            staged.unlink(missing_ok=True)
            raise FetchError(
                f"downloaded Cityscapes package does not verify: {url}\n"
                f"  md5: expected {expected.text.split()[0] if expected.ok and expected.text.split() else '?'}, "
                f"got {md5} ({size:,} bytes)\n"
                f"  The file was deleted and nothing was placed under {package}. To use a copy downloaded in a "
                f"browser:\n    asymfusion fetch cityscapes --from-file PATH/{package}"
            ) from exc
    else:
        kept = staged.stat().st_size if staged.exists() else 0
        raise FetchError(
            f"could not download {url} ({package})\n  after {options.retries + 1} attempt(s); last error: "
            f"{errors[-1]}\n  {kept:,} bytes are kept in {staged}; the next run resumes from there.\n"
            f"To use a copy downloaded in a browser:\n    asymfusion fetch cityscapes --from-file PATH/{package}"
        )
    sha256 = file_digests(staged)[1]
    os.replace(staged, folder / package)
    return sha256
