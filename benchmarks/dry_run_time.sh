#!/usr/bin/env bash
# How long Snakemake takes to build the DAG of the real benchmarks (target: <= 10 s each).
#   benchmarks/dry_run_time.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
work=$(mktemp -d)
for name in usb classic_cv; do
  start=$(date +%s.%N)
  snakemake -n --quiet rules --directory "$work" --snakefile "$PWD/Snakefile" \
    --configfile "config/$name.yaml" | awk '$1 == "train" && !seen++ {print "'"$name"': " $2 " train jobs"}'
  end=$(date +%s.%N)
  echo "$name: $(echo "$end - $start" | bc) s"
done
rm -rf "$work"
