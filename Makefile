# OpenMindSpore: `make demo` runs the main job, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
OMS    := $(VENV)/bin/oms
export GLOG_v ?= 3

.PHONY: demo test test-all check install install-test bench clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/activate
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/activate
	$(PY) -m pip install -q -e ".[test]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: check

demo: $(VENV)/.installed
	$(OMS) train examples/mnist_cnn.yaml --workers 2 --kill-worker-at 100:1 --out runs/demo-$$(date +%Y%m%d-%H%M%S)

# lint, format and type checks (ruff, mypy: configured in pyproject.toml); `make test` runs them first
check: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

# two pytest-xdist workers: a test file is one unit of work; files start longest first (tests/conftest.py)
XDIST := -n 2 --dist loadfile --no-loadscope-reorder
test: check
	$(PY) -m pytest -q --durations=30 $(XDIST) -m "not heavy" tests

# also the heavy end-to-end variants (marker `heavy` in pyproject.toml)
test-all: check
	$(PY) -m pytest -q --durations=30 $(XDIST) tests

clean:
	rm -rf $(VENV) runs .pytest_cache
