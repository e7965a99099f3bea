"""Fixtures of the data tests: the loopback server and fast fetch options."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from asymfusion.datasets.fetch import FetchOptions

from .server import LoopbackServer

REPO = Path(__file__).resolve().parents[2]
REAL_SAMPLES = REPO.parent / "shared" / "real-samples"


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def fast() -> FetchOptions:
    """Quick retries and short timeouts so that a failing test stays bounded."""
    return FetchOptions(retries=2, backoff=0.01, max_backoff=0.05, timeout=5.0, progress=False, jobs=4)


@pytest.fixture(autouse=True)
def _no_real_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never read a developer's Cityscapes credentials or data directory; never prompt."""
    monkeypatch.delenv("CITYSCAPES_USERNAME", raising=False)
    monkeypatch.delenv("CITYSCAPES_PASSWORD", raising=False)
    monkeypatch.delenv("ASYMFUSION_TASKONOMY_COMMIT", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))

    def no_prompt(*args: object, **kwargs: object) -> str:
        raise AssertionError("a fetch must never prompt")

    monkeypatch.setattr("builtins.input", no_prompt)
    monkeypatch.setattr("getpass.getpass", no_prompt)
