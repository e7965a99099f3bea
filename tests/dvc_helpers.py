"""A temporary clone of the project that runs its own code, for tests through the real `dvc` CLI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from asymfusion.benchmark.config.inherit import base_chain
from tests.engine_helpers import REPO

DVC = str(Path(sys.executable).with_name("dvc"))
CODE = ("benchmark", "models", "datasets")


def suite_only_params(raw: dict[str, Any], suite: str, synthetic: dict[str, Any] | None = None) -> dict[str, Any]:
    """params.yaml cut down to one suite: its experiments, the recipes they inherit, its datasets and reports."""
    recipes, experiments = raw.get("recipes", {}), raw["experiments"]
    keep_exps, keep_recipes = {}, {}
    for name, entry in experiments.items():
        chain = base_chain(name, "experiments", recipes, experiments)
        resolved_suite = next(((recipes if s == "recipes" else experiments)[n].get("suite") for s, n in chain
                               if "suite" in (recipes if s == "recipes" else experiments)[n]), None)
        if resolved_suite != suite:
            continue
        keep_exps[name] = entry
        keep_recipes.update({n: recipes[n] for s, n in chain if s == "recipes"})
    datasets = {d for e in keep_exps.values() for d in [e.get("data", {}).get("dataset")] if d}
    for r in keep_recipes.values():
        if r.get("data", {}).get("dataset"):
            datasets.add(r["data"]["dataset"])
    out = {"paths": {"data": "data", "checkpoints": "checkpoints"},
           "synthetic": synthetic or raw["synthetic"],
           "datasets": {k: v for k, v in raw["datasets"].items() if k in datasets},
           "suites": {suite: raw["suites"][suite]},
           "recipes": {k: keep_recipes[k] for k in recipes if k in keep_recipes},
           "experiments": keep_exps}
    for section in ("tables", "claims"):
        if suite in raw.get(section, {}):
            out[section] = {suite: raw[section][suite]}
    return out


def code_copy(root: Path) -> dict[str, str]:
    """Copy the package folders into `root`; returns an environment in which `asymfusion.<pkg>` resolves to the
    copy, not to the editable install (a shim folder of symlinks first on PYTHONPATH)."""
    root.mkdir(parents=True, exist_ok=True)
    for folder in CODE:
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return code_env(root)


def code_env(root: Path) -> dict[str, str]:
    """An environment in which `asymfusion.<pkg>` resolves to the package folders in `root`."""
    shim = root.parent / f"{root.name}-shim" / "asymfusion"
    shim.mkdir(parents=True)
    for folder in CODE:
        (shim / folder).symlink_to(root / folder, target_is_directory=True)
    return {**os.environ, "PYTHONPATH": str(shim.parent), "OMP_NUM_THREADS": "1",
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


class Clone:
    """A git + DVC repository in `root` with the project's code and `params`; commands run that copy's code."""

    def __init__(self, root: Path, params: dict[str, Any]) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.env = {**code_copy(root), "DVC_NO_ANALYTICS": "1"}
        shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
        (root / ".gitignore").write_text("/data/\n/checkpoints/\n__pycache__/\n*.tmp\n")
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, width=1000))
        self.run("git", "init", "-q")
        self.run("git", "config", "user.email", "t@t")
        self.run("git", "config", "user.name", "t")
        self.run(DVC, "init", "-q")
        self.asymfusion("pipeline")
        self.commit("clone")

    @classmethod
    def git_clone(cls, source: "Clone", root: Path) -> "Clone":
        """A second machine's checkout: `git clone` of `source` (code, params, dvc.yaml, dvc.lock; no DVC cache)."""
        subprocess.run(["git", "clone", "-q", str(source.root), str(root)], check=True, capture_output=True)
        clone = cls.__new__(cls)
        clone.root, clone.env = root, {**code_env(root), "DVC_NO_ANALYTICS": "1"}
        return clone

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(argv), cwd=self.root, capture_output=True, text=True, env=self.env)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n"
                                 f"{proc.stderr[-4000:]}")
        return proc

    def asymfusion(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "asymfusion.benchmark.cli", *args, check=check)

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(DVC, *args, check=check)

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-qm", message, "--allow-empty")

    def ran(self, proc: subprocess.CompletedProcess) -> set[str]:
        """Stages that a `dvc repro` / `dvc exp run` output says it ran."""
        return set(re.findall(r"Running stage '([^']+)'", proc.stdout + proc.stderr))

    def changed(self) -> set[str]:
        """Stages `dvc status` reports as changed."""
        out = self.dvc("status").stdout
        return {line[:-1] for line in out.splitlines() if line and not line[0].isspace() and line.endswith(":")}
