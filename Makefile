# The two commands: `make test` and `make demo`. Both set everything up from a clean clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Debian packages: translators for backtranslation tests, CLDR/emoji data and fonts for the demo.
DEB_PACKAGES := apertium apertium-eng-spa apertium-eng-cat unicode-cldr-core unicode-data \
	fonts-noto-color-emoji fonts-symbola
PYTEST_ARGS ?=

.PHONY: test demo deps venv clean

$(VENV)/.installed-%: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -e '.[$*]'
	touch $@

deps:
	@bash .ci/install_debian_packages.sh $(DEB_PACKAGES)

venv: $(VENV)/.installed-test

test: deps $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS)

demo: deps $(VENV)/.installed-demo
	@echo "make demo: the emoji/CLDR demo pipeline is not built yet (issue 6)."; exit 1

clean:
	rm -rf $(VENV) build *.egg-info runs
