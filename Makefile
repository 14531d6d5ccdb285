# The README's two commands are `make demo` and `make test`; everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-stamp
MODEL_CONFIG ?= demo

.PHONY: venv test unit integration model bench demo local lint tools clean system-deps browser-deps ipex-env test-ipex dynalite

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	touch $@

# dicom3tools (dciodvfy) validates the DICOM objects we send to PACS, and dcmtk (dcmcjpeg/dcmdjpeg) encodes and
# decodes the JPEG lossless / 12-bit reference frames (its echoscu/storescu/storescp are the gateway tests' modality);
# Orthanc (with its DICOMweb plugin) plays the hospital's PACS in the gateway tests, make demo and make bench (started
# as our own process on free loopback ports, never the package's system service). All installed when missing and possible.
system-deps:
	@command -v dciodvfy >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq dicom3tools >/dev/null) || echo "warning: dicom3tools not installed; DICOM validation tests will fail"; }
	@command -v dcmcjpeg >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq dcmtk >/dev/null) || echo "warning: dcmtk not installed; the JPEG reference-decoder tests against dcmdjpeg will skip"; }
	@test -x /usr/sbin/Orthanc || { (apt-get update -qq && apt-get install -y -qq orthanc >/dev/null) || echo "warning: orthanc not installed; the PACS round-trip tests will fail and make demo skips its PACS loop"; }
	@test -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so || { (apt-get update -qq && apt-get install -y -qq orthanc-dicomweb >/dev/null) || echo "warning: orthanc-dicomweb not installed; the STOW-RS delivery test will fail"; }

# The worklist's browser test (tests/integration/test_worklist_browser.py) drives Debian's Chromium through
# Debian's chromedriver, so the two always match and nothing downloads a browser build.
browser-deps:
	@{ test -x /usr/bin/chromium && test -x /usr/bin/chromedriver; } || { (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) || echo "warning: chromium not installed; the worklist browser test will fail"; }

# dynalite (npm, dev/test only) is the DynamoDB the store's concurrency tests race on: it applies a write's
# condition and the write in one step, as DynamoDB does and moto does not (tests/integration/dynalite_server.py).
# Installed into build/node; node and npm come from apt when missing. Without it the other tests still run
# and those fail (they never skip).
DYNALITE := build/node/node_modules/dynalite/cli.js
$(DYNALITE):
	@command -v npm >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null) || echo "warning: npm not installed; the store's concurrency tests will fail"; }
	npm install --prefix build/node --no-audit --no-fund --loglevel=error 'dynalite@4' || echo "warning: dynalite not installed; the store's concurrency tests will fail"

dynalite: $(DYNALITE)

# The IPEX parity tests run in their own venv (torch 2.8 + IPEX 2.8, ~4 GB from the registry, about two
# minutes to install here); `make test` builds it when missing, so CI checks that path too (dynalite likewise).
test: venv system-deps browser-deps tools dynalite
	$(VENV)/bin/pytest -q -p no:cacheprovider tests
	$(MAKE) --no-print-directory test-ipex

unit: venv
	$(VENV)/bin/pytest -q tests/unit

integration: venv dynalite browser-deps
	$(VENV)/bin/pytest -q tests/integration

model: venv
	$(PY) scripts/build_model.py --config $(MODEL_CONFIG) --out build/model

# E.g. BENCH_ARGS="--configs seed_equivalent --skip-load --skip-decode" (one config), "--aoti-budget 1800".
# The seed-equivalent AOTInductor packages are compiled within --aoti-budget and cached in build/cache/aoti.
BENCH_ARGS ?=
bench: venv model
	$(PY) scripts/bench.py --out build/bench $(BENCH_ARGS)

demo: venv model
	$(PY) scripts/demo.py

# The application on this machine until Ctrl-C: the emulator on 127.0.0.1:4566 with template.yaml deployed and
# the function polling its queue; use it with the AWS CLI (README, "Run it locally"). E.g. LOCAL_ARGS="--workers 4".
LOCAL_ARGS ?=
local: venv model
	$(VENV)/bin/boneage local $(LOCAL_ARGS)

clean:
	rm -rf build .pytest_cache

# IPEX works only with torch 2.8.*, so it lives in its own venv (PyPI's torch 2.8 is the CUDA build:
# several GB). The boneage package is put on the path, not installed, so its torch==2.13 pin stays out.
IPEX_VENV := .venv-ipex
$(IPEX_VENV)/.installed-stamp:
	test -x $(IPEX_VENV)/bin/python || $(PYTHON) -m venv $(IPEX_VENV)
	$(IPEX_VENV)/bin/pip install -q 'torch==2.8.*' 'intel-extension-for-pytorch==2.8.*' numpy pillow pytest pytest-timeout pytest-socket
	# boneage.phantom (phantom films for the IPEX assessor test) imports pydicom; same bounds as pyproject.
	$(IPEX_VENV)/bin/pip install -q 'pydicom>=3.0,<3.1'
	touch $@

ipex-env: $(IPEX_VENV)/.installed-stamp

# Same outputs as eager within tolerance, run under torch 2.8 + IPEX 2.8.
test-ipex: ipex-env
	PYTHONPATH=shared $(IPEX_VENV)/bin/pytest -q -p no:cacheprovider -m ipex tests/unit/engine/test_ipex_parity.py

# aws-sam-cli pins an older boto3 than the service's venv uses, so `sam` and `checkov` (the `lint` extra)
# live in their own venv; tests/integration/test_template_checks.py runs them from there.
TOOLS_VENV := build/tools-venv
$(TOOLS_VENV)/.installed-stamp: pyproject.toml
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install -q 'aws-sam-cli>=1.120' 'checkov>=3.2'
	touch $@

tools: $(TOOLS_VENV)/.installed-stamp

# Static checks of template.yaml (offline: dummy credentials and a region for sam).
lint: venv tools
	$(VENV)/bin/cfn-lint template.yaml
	AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing SAM_CLI_TELEMETRY=0 $(TOOLS_VENV)/bin/sam validate --lint --template template.yaml
	$(TOOLS_VENV)/bin/checkov -f template.yaml --framework cloudformation --compact --quiet 2>/dev/null
