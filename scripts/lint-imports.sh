#!/usr/bin/env bash
# The layering contract of pyproject.toml ([tool.importlinter]) checked by import-linter. The three top-level folders
# install as `asymfusion.<folder>` through setuptools' editable finder, which grimp cannot walk, so the check reads
# them through a temporary folder of symlinks that lays the namespace out on disk.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
shim="$(mktemp -d)"
trap 'rm -rf "$shim"' EXIT
mkdir "$shim/asymfusion"
for folder in benchmark models datasets; do ln -s "$repo/$folder" "$shim/asymfusion/$folder"; done
cd "$repo"
PYTHONPATH="$shim" "${PYTHON:-$repo/.venv/bin/python}" -c "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())" "$@"
