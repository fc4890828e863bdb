# The two commands: `make test` and `make demo`. Both set everything up from a clean clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Debian packages: translators for backtranslation tests, CLDR/emoji data and fonts for the demo.
DEB_PACKAGES := apertium apertium-eng-spa apertium-eng-cat unicode-cldr-core unicode-data \
	fonts-noto-color-emoji fonts-symbola
# The suite runs one test file per worker (pytest-xdist), one worker per core up to 4: module
# fixtures stay in their file's worker, and the files with slow tests go first (tests/conftest.py)
# so the workers finish together. PYTEST_ARGS= runs it in one process.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n > 4 ? 4 : n )))
PYTEST_ARGS ?= -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15
# The translated ImageNet prompts (read from the package; the demo's eval uses them too).
CLIP_BENCHMARK := clip-benchmark==1.6.2

.PHONY: test lint demo experiments bench deps venv clean test-data-packages

$(VENV)/.installed-%: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -e '.[$*]'
	[ "$*" != test ] || $(MAKE) --no-print-directory test-data-packages
	[ "$*" != demo ] || $(PIP) install -q --no-deps $(CLIP_BENCHMARK)
	touch $@

# Installed without their dependencies on purpose:
# - clip-benchmark: we only read the translated prompt files it ships (its deps pull a CUDA torch stack).
# - open_clip: the benchmark's PyTorch peer; its deps would pull the CUDA-linked torchvision.
# - torchvision: PyPI's x86_64 wheels link against CUDA torch and fail to import beside the CPU torch
#   pinned in the test extra; timm imports torchvision at import time (never on the ViT path we test),
#   and 0.15.2 is a release whose import tolerates missing compiled ops.
test-data-packages:
	$(PIP) install -q --no-deps $(CLIP_BENCHMARK) open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4
	if [ "$$(uname -m)" = x86_64 ]; then $(PIP) install -q --no-deps torchvision==0.15.2; fi

deps:
	@bash .ci/install_debian_packages.sh $(DEB_PACKAGES)

venv: $(VENV)/.installed-test

test: deps $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS)

# ruff: lint and format (2-space indent, single quotes; pyproject.toml). CI runs it before the tests.
lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The emoji/CLDR pipeline end to end (mlit/commands/demo.py); re-running reuses what is built.
demo: deps $(VENV)/.installed-demo
	$(PY) -m mlit.commands.demo --run_dir runs/demo

# The demo, then the paper's comparisons and two more seeds beside it (runs/demo/compare/).
experiments: deps $(VENV)/.installed-demo
	$(PY) -m mlit.commands.demo --run_dir runs/demo --compare

# Throughput, MFU and memory side by side with the PyTorch peers (10-20 minutes on 2 cores).
bench: deps $(VENV)/.installed-test
	$(PY) benchmarks/run.py --out runs/bench

clean:
	rm -rf $(VENV) build *.egg-info runs
