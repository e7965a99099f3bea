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


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    list_fusions()
    monkeypatch.setattr(registry, "_REGISTRY", {k: v for k, v in registry._REGISTRY.items() if k != "mean_mix"})


def test_the_guide_has_a_short_method_file_and_a_test() -> None:
    method_code, test_code = _python_blocks()
    assert len(method_code.strip().splitlines()) <= 60
    assert "@register_fusion(" in method_code and "def test_" in test_code


def test_the_guide_method_registers_builds_and_passes_the_guide_test(scratch_registry, monkeypatch) -> None:
    method_code, test_code = _python_blocks()
    module = types.ModuleType("guide_mean_mix")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # pydantic resolves annotations through the module
    exec(compile(method_code, str(GUIDE), "exec"), module.__dict__)
    assert "mean_mix" in list_fusions()
    namespace: dict = {}
    exec(compile(test_code, str(GUIDE), "exec"), namespace)
    tests = [fn for name, fn in namespace.items() if name.startswith("test_")]
    assert tests
    for test in tests:
        test()
