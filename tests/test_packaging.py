"""The three code folders install under the one `asymfusion` namespace, and the CLI documents every verb."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"benchmark": "asymfusion.benchmark", "datasets": "asymfusion.datasets", "models": "asymfusion.models"}


def test_pyproject_lists_every_subpackage_under_the_asymfusion_namespace() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for folder, package in FOLDERS.items():
        assert config["package-dir"][package] == folder
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([package, *rel.parts]))
    assert found == listed, f"add to / remove from pyproject packages: {sorted(found ^ listed)}"
    assert not any(p.split(".")[0] in ("models", "datasets", "benchmark") for p in listed)


def test_no_top_level_models_or_datasets_package_is_importable_outside_the_repo(tmp_path: Path) -> None:
    code = "import importlib.util as u; print(u.find_spec('models'), u.find_spec('asymfusion.models') is not None)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path).stdout
    assert out.strip() == "None True"


def _verbs(argv: list[str]) -> str:
    proc = subprocess.run([sys.executable, "-m", "asymfusion.benchmark.cli", *argv, "--help"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize(
    "argv", [[], ["config"], ["config", "show"], ["config", "list"], ["prepare"], ["prepare", "synthetic"], ["show"]]
)
def test_every_cli_verb_has_help(argv: list[str]) -> None:
    text = _verbs(argv)
    assert "usage: asymfusion" in text


def test_cli_help_lists_choices() -> None:
    assert "{train,val}" in _verbs(["show"])
    assert "{1..32}" in _verbs(["prepare", "synthetic"])
