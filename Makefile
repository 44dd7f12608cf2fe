# Every target creates/uses the local virtualenv .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# A CPU build of torch; an unpinned torch can pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed
# Bytecode is cached: with PYTHONDONTWRITEBYTECODE set (some shells set it), every test process and every
# subprocess a test starts would compile torch's lazily imported modules and this package from source again.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test test-fast check bench gpu-check gpu-wheels clean install

$(STAMP): setup.cfg setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[test,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m npuprofile demo

# The whole suite: unit tier (in-process) and integration tier (subprocesses, ranks, compile, CLI, browser).
test: $(STAMP)
	$(PY) -m pytest -q tests

# The unit tier alone (under 30 s).
test-fast: $(STAMP)
	$(PY) -m pytest -q tests/unit

# Lint and strict typing of the package (it ships py.typed).
check: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Runs every benchmark (each prints figure, reference and ratio); fails if any target was missed.
bench: $(STAMP)
	status=0; for script in benchmarks/[!_]*.py; do echo "== $$script"; $(PY) $$script || status=1; done; exit $$status

# On a machine with a CUDA GPU and its own torch (run there, not here): CUDA tests and GPU figures.
gpu-check:
	bash benchmarks/gpu_check.sh

# Here, before a GPU run: wheels the GPU machine lacks (it has no network), into .whl/.
gpu-wheels:
	$(PYTHON) -m pip download -q --only-binary=:all: --python-version 3.12 --no-deps -d .whl orjson

clean:
	rm -rf $(VENV) npuprofile-demo build *.egg-info .pytest_cache
