"""The guide docs/adding-a-fusion-method.md runs as written: its method file registers, its test passes."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from asymfusion.models import list_fusions
from asymfusion.models.fusion import registry

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "adding-a-fusion-method.md"
GUIDE_METHODS = ("mean_mix", "mean_mix_sparse")


def guide_blocks() -> tuple[str, str]:
    """(the method file: every block without tests, in order; the test file: the block with `def test_`)."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    tests = [b for b in blocks if "def test_" in b]
    assert len(tests) == 1, "the guide has one test file"
    return "\n\n".join(b for b in blocks if "def test_" not in b), tests[0]


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    list_fusions()
    monkeypatch.setattr(registry.FUSIONS, "entries", {k: v for k, v in registry.FUSIONS.entries.items()
                                                if k not in GUIDE_METHODS})


def test_the_guide_has_a_short_method_file_of_four_concepts_and_a_test() -> None:
    method_code, test_code = guide_blocks()
    first = method_code.split("\n\n\nclass SparseMeanMix")[0]
    assert len(first.strip().splitlines()) <= 45
    imports = [line for line in first.splitlines() if line.startswith("from asymfusion")]
    assert imports == ["from asymfusion.models.fusion import FusionMethod, FusionOptions, StackedModel, "
                       "register_fusion"]
    assert "@register_fusion(" in method_code and "def test_" in test_code


def test_the_guide_method_registers_builds_and_passes_the_guide_test(scratch_registry, monkeypatch) -> None:
    method_code, test_code = guide_blocks()
    module = types.ModuleType("guide_mean_mix")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # pydantic resolves annotations through the module
    exec(compile(method_code, str(GUIDE), "exec"), module.__dict__)
    assert set(GUIDE_METHODS) <= set(list_fusions())
    namespace: dict = {}
    exec(compile(test_code, str(GUIDE), "exec"), namespace)
    tests = [fn for name, fn in namespace.items() if name.startswith("test_")]
    assert len(tests) == 2
    for test in tests:
        test()
