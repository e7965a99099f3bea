# The two commands of the README. Each sets up .venv on first use (torch, timm, dvc, ... and this package, editable).
#   make quick   - the main job: the quick suite end to end (regenerates dvc.yaml, then `dvc repro report-quick`)
#   make test    - the test suite (what CI runs through .ci/run)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: quick test setup clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

quick: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" asymfusion pipeline
	PATH="$(abspath $(BIN)):$$PATH" dvc repro report-quick

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

clean-venv:
	rm -rf $(VENV)
