# The README's two commands are `make demo` and `make test`; everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-stamp
MODEL_CONFIG ?= demo

.PHONY: venv test unit integration model bench demo lint clean system-deps

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	touch $@

# dicom3tools (dciodvfy) validates the DICOM objects we send to PACS; installed when missing and possible.
system-deps:
	@command -v dciodvfy >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq dicom3tools >/dev/null) || echo "warning: dicom3tools not installed; DICOM validation tests will fail"; }

test: venv system-deps
	$(VENV)/bin/pytest -q -p no:cacheprovider tests

unit: venv
	$(VENV)/bin/pytest -q tests/unit

integration: venv
	$(VENV)/bin/pytest -q tests/integration

model: venv
	$(PY) scripts/build_model.py --config $(MODEL_CONFIG) --out build/model

bench: venv model
	$(PY) scripts/bench.py --out build/bench

demo: venv model
	$(PY) scripts/demo.py

clean:
	rm -rf build .pytest_cache
