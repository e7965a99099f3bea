"""The package's architecture, checked: the layering contract (import-linter), module sizes, a fast CLI import."""

from __future__ import annotations

import subprocess
import sys

from tests.engine_helpers import REPO

PACKAGES = ("benchmark", "models", "datasets")


def test_the_layering_contract_holds() -> None:
    proc = subprocess.run(["bash", str(REPO / "scripts" / "lint-imports.sh")], capture_output=True, text=True,
                          env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_modules_stay_under_400_lines() -> None:
    long = {str(p.relative_to(REPO)): n for folder in PACKAGES for p in (REPO / folder).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_the_cli_and_the_config_import_without_torch() -> None:
    probe = ("import sys; import asymfusion.benchmark.cli, asymfusion.benchmark.config; "
             "print(sorted(m for m in ('torch', 'numpy', 'pandas', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_no_comment_cites_a_design_file_outside_the_repository() -> None:
    bad = []
    for folder in (*PACKAGES, "tests", "docs"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".py", ".md") and path.is_file():
                text = path.read_text()
                if "DESIGN" + ".md" in text or "/wo" + "rk/" in text:
                    bad.append(str(path.relative_to(REPO)))
    assert not bad, f"cite docs/design.md (in the repository) instead: {bad}"
