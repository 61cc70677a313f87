# Two entry points: `make demo` (the main job end to end on a small real example) and
# `make test` (install and run the test suite). Both create a local virtualenv in .venv.
# torch is pinned to the CPU wheel that installs fast on a fresh machine; on a CUDA machine
# install the matching CUDA wheel into .venv first and these targets leave it alone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
DEMO := demo

.PHONY: install demo test test-slow typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

test: install typecheck
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

# mypy over the public API; settings and the module list in pyproject.toml [tool.mypy]
typecheck: install
	$(BIN)/python -m mypy

test-slow: install
	$(BIN)/python -m pytest -q --slow tests

demo: install
	bash scripts/demo.sh $(DEMO)

clean:
	rm -rf $(VENV) $(DEMO) build dist *.egg-info
