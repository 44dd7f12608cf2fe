# Every target creates/uses the local virtualenv .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# A CPU build of torch; an unpinned torch can pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean install

$(STAMP): setup.cfg setup.py pyproject.toml npuprofile/_speedups.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m npuprofile demo

test: $(STAMP)
	$(PY) -m pytest -q

# Runs every benchmark (each prints figure, reference and ratio); fails if any target was missed.
bench: $(STAMP)
	status=0; for script in benchmarks/[!_]*.py; do echo "== $$script"; $(PY) $$script || status=1; done; exit $$status

clean:
	rm -rf $(VENV) npuprofile-demo build *.egg-info .pytest_cache
