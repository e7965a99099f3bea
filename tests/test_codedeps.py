"""Computed code deps: every package module a real stage imports is listed, and a new method file changes none."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asymfusion.benchmark.engine.codedeps import REPO, closure, method_file, stage_code
from tests.engine_helpers import micro_params

PROBE = """
import json, sys
from asymfusion.benchmark.cli import main
code = main(sys.argv[2:])
files = sorted(m.__file__ for name, m in list(sys.modules.items())
               if name.startswith("asymfusion.") and getattr(m, "__file__", None))
json.dump({"exit": code, "files": files}, open(sys.argv[1], "w"))
"""


def _imported(tmp_path: Path, *argv: str) -> set[str]:
    out = tmp_path / "imported.json"
    subprocess.run([sys.executable, "-c", PROBE, str(out), *argv], check=True, capture_output=True, cwd=tmp_path)
    result = json.loads(out.read_text())
    assert result["exit"] == 0, argv
    return {str(Path(f).resolve().relative_to(REPO)) for f in result["files"]}


@pytest.mark.slow
def test_listed_code_covers_what_train_evaluate_and_tables_import(tmp_path: Path, synthetic_data_dir: Path) -> None:
    params = micro_params(tmp_path, synthetic_data_dir, ["asymfusion"], epochs=1)
    every_method = {str(p.relative_to(REPO)) for p in (REPO / "models" / "fusion").glob("*.py")} - {
        "models/fusion/__init__.py", "models/fusion/base.py", "models/fusion/ops.py", "models/fusion/registry.py"}
    # The registry's discovery imports every method file to learn the names; only the used one runs.
    for verb, argv in (("train", ["train", "micro-asymfusion-s0", "--no-progress"]),
                       ("evaluate", ["evaluate", "micro-asymfusion-s0"])):
        imported = _imported(tmp_path, "--params", str(params), *argv)
        listed = set(stage_code(verb, ["asymfusion"]))
        assert imported - every_method <= listed, f"{verb} imports unlisted files: {imported - every_method - listed}"
        assert "models/fusion/asymfusion.py" in listed and "models/fusion/asymfusion.py" in imported
    # Validating params.yaml imports every method file (and what those import) only to learn names and options;
    # a tables stage computes nothing with them, so it lists the registry and the config, not the method files
    # (it lists the task modules, which build the translation critic from models/).
    discovery = set(closure([f"asymfusion.{m[:-3].replace('/', '.')}" for m in every_method]))
    imported = _imported(tmp_path, "--params", str(params), "config", "validate", "--no-models")
    assert imported - discovery <= set(stage_code("tables"))
    tables = stage_code("tables")
    assert not [f for f in tables if f.startswith(("benchmark/engine/", "models/fusion/")) and
                f not in ("models/fusion/__init__.py", "models/fusion/base.py", "models/fusion/registry.py")]


def test_the_cli_reads_only_module_level_imports_of_other_verbs() -> None:
    train = set(stage_code("train", ["msbn"]))
    assert "benchmark/cli.py" in train and "benchmark/engine/train.py" in train
    assert not train & {"benchmark/tune/study.py", "benchmark/perf/bench.py", "benchmark/engine/evaluate.py", "datasets/fetch.py"}
    assert "benchmark/perf/bench.py" in stage_code("bench") and "benchmark/tune/study.py" in stage_code("tune")


def test_a_new_method_file_changes_no_existing_stage_code(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    for folder in ("benchmark", "models", "datasets"):
        shutil.copytree(REPO / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    before = {verb: stage_code(verb, ["asymfusion"], root=copy) for verb in ("train", "evaluate", "tables")}
    (copy / "models" / "fusion" / "brand_new.py").write_text(
        'from .registry import register_fusion\n\n\n@register_fusion("brand_new")\nclass BrandNew:\n    pass\n')
    after = {verb: stage_code(verb, ["asymfusion"], root=copy) for verb in ("train", "evaluate", "tables")}
    assert before == after
    assert method_file("brand_new", root=copy) == "models/fusion/brand_new.py"
    assert "models/fusion/brand_new.py" in stage_code("train", ["brand_new"], root=copy)


def test_imports_inside_functions_count_and_type_checking_imports_do_not(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    (copy / "benchmark").mkdir(parents=True)
    (copy / "benchmark" / "__init__.py").write_text("")
    (copy / "benchmark" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import c\n\n"
        "def f():\n    from asymfusion.benchmark import b\n")
    (copy / "benchmark" / "b.py").write_text("")
    (copy / "benchmark" / "c.py").write_text("")
    assert closure(["asymfusion.benchmark.a"], copy) == ["benchmark/__init__.py", "benchmark/a.py", "benchmark/b.py"]


def test_an_unknown_method_is_named() -> None:
    with pytest.raises(ValueError, match="no file under models/fusion/ registers fusion method 'nope'"):
        method_file("nope")


def test_docstring_comment_and_layout_edits_keep_the_fingerprint_and_code_edits_change_it(tmp_path: Path) -> None:
    from asymfusion.benchmark.engine.codedeps import fingerprint

    source = ('"""Module doc."""\n\n\nclass A:\n    """Class doc."""\n\n    def f(self, x):\n'
              '        """Method doc."""\n        return x + 1  # one\n')
    (tmp_path / "m.py").write_text(source)
    before = fingerprint(["m.py"], tmp_path)
    (tmp_path / "m.py").write_text(source.replace("Module doc.", "Reworded.").replace("# one", "# two")
                                   .replace("Method doc.", "Other words.\n\n        More.")
                                   .replace("return x + 1", "return (x\n                + 1)"))
    assert fingerprint(["m.py"], tmp_path) == before
    (tmp_path / "m.py").write_text(source.replace("x + 1", "x + 2"))
    changed = fingerprint(["m.py"], tmp_path)
    (tmp_path / "m.py").write_text(source.replace('        """Method doc."""\n', '        "a string"\n        "b"\n'))
    assert changed != before and fingerprint(["m.py"], tmp_path) != before  # a second string is code
