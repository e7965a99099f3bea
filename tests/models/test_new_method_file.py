"""A new method file is all a method needs: the guide's file dropped into models/fusion/ (of a copy of the package)
passes the generic method tests, and the existing tests do not notice it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.dvc_helpers import code_copy
from tests.engine_helpers import REPO

from .test_docs_example import GUIDE_METHODS, guide_blocks


def test_the_guide_file_in_models_fusion_passes_the_generic_method_tests(tmp_path: Path) -> None:
    env = code_copy(tmp_path / "copy")
    method_code, _ = guide_blocks()
    (tmp_path / "copy" / "models" / "fusion" / "mean_mix.py").write_text(method_code)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-p", "no:randomly",
         "tests/models/test_methods.py", "tests/models/test_registry_config.py", "-k",
         " or ".join(["mean_mix", "registered", "unknown"])],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    # the copy was tested, not the editable install: the new methods' cases ran
    passed = [line.split()[0] for line in proc.stdout.splitlines() if line.endswith("PASSED") or " PASSED " in line]
    for method in GUIDE_METHODS:
        ran = [t for t in passed if f"[{method}-" in t]
        assert len(ran) >= 5, f"{method}: {ran}"  # 2 tasks x 2 modality sets + parameter groups + auxiliary terms
