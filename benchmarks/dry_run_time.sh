#!/usr/bin/env bash
# How long `snakemake -n` takes on the real benchmarks: the first call in a working directory
# checks the config with the full stack (torch, every registry) and caches the workflow's plan
# (.snakemake/semibench/); later calls read the plan and import nothing heavy.
#   benchmarks/dry_run_time.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
work=$(mktemp -d)
for name in usb classic_cv; do
  for call in first cached; do
    start=$(date +%s.%N)
    snakemake -n --quiet rules --directory "$work" --snakefile "$PWD/Snakefile" \
      --configfile "config/$name.yaml" | awk '$1 == "train" && !seen++ {printf "%s train jobs, ", $2}'
    end=$(date +%s.%N)
    echo "$name ($call call): $(echo "$end - $start" | bc) s"
  done
done
start=$(date +%s.%N)
python -c "import snakemake.cli" >/dev/null
echo "importing snakemake alone: $(echo "$(date +%s.%N) - $start" | bc) s"
rm -rf "$work"
# the same dry runs against Snakemake's floor: a bare Snakefile with the same jobs and files
python benchmarks/dry_run_floor.py config/usb.yaml
