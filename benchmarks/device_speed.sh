#!/usr/bin/env bash
# The GPU speed table, unattended, in under 8 minutes: SemiBench's FixMatch step in fp32 eager,
# bf16 eager and bf16 + CUDA graphs (reduce-overhead) on every USB setting, semilearn 0.3.2's
# fp32-eager step beside it, packing throughput of 1/2/4/8 concurrent ViT-S/2 jobs, the
# calibration rows for `semibench plan`, and the device's nvidia-smi report.
#
#   OUT=/some/dir benchmarks/device_speed.sh          # on the GPU machine
#   DEVICE=cpu OUT=/tmp/x benchmarks/device_speed.sh  # dry run of the same logic on a CPU (tiny)
#
# Python: .venv/bin/python when present; else a python3 on PATH that already has torch, timm
# and transformers (src/ on PYTHONPATH); else `make install` (needs the package registry).
# semilearn: benchmarks/.semilearn (`make bench-deps` here, then carry the folder to a device
# without the registry); installed with pip if missing, skipped (and said) if that fails. Every step has its own time limit; a step that fails or
# runs out of time is written to $OUT/steps.log and the next one runs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/out/device}
DEVICE=${DEVICE:-cuda}
BUDGET_S=${BUDGET_S:-450}   # the whole script; the steps' limits below add up to less
mkdir -p "$OUT"
LOG="$OUT/steps.log"
: > "$LOG"
START=$(date +%s)
say() { echo "[$(( $(date +%s) - START )) s] $*" | tee -a "$LOG" >&2; }
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }

# ---------------------------------------------------------------- python
if [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
elif python3 -c 'import torch, timm, transformers, yaml, jsonschema' 2>/dev/null; then
  PY=python3
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  say "no .venv: using $(command -v python3) with src/ on PYTHONPATH"
elif timeout 240 make install >>"$OUT/install.log" 2>&1; then
  PY=.venv/bin/python
else
  say "no usable python: no .venv, python3 lacks torch/timm/transformers and make install failed (install.log)"
  exit 1
fi
say "python: $PY ($($PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1))"
# semilearn: benchmarks/.semilearn (`make bench-deps`; carry it to a machine without the registry)
if [ ! -d benchmarks/.semilearn/semilearn ]; then
  if timeout 90 "$PY" -m pip install --quiet --no-deps --target benchmarks/.semilearn \
      semilearn==0.3.2 ruamel.yaml==0.19.1 progress==1.6.1 >>"$OUT/install.log" 2>&1; then
    say "semilearn installed"
  else
    say "semilearn could not be installed (install.log): SemiBench side only"
  fi
fi

# ---------------------------------------------------------------- device facts
if [ "$DEVICE" = cpu ]; then
  TINY=(--tiny --rounds 2 --steps 1 --warmup 1 --split-every 1)
  # the logic of every step, on the cheapest setting of each family (ViT: vit_s2_32 above)
  PACK=1,2; PACK_S=2; PACK_WARM=8
  SETS_A=vit_s2_32,bert_base; SETS_B=wrn_28_2,hubert_4s
  MODES=none/none
  lscpu > "$OUT/device.txt" 2>&1 || true
else
  TINY=(--rounds 5 --steps 3 --warmup 3 --split-every 2)
  PACK=1,2,4,8; PACK_S=15; PACK_WARM=60
  SETS_A=vit_s2_32,bert_base; SETS_B=wrn_28_2,hubert_4s,vit_b16_96,vit_s16_224
  MODES=none/none,bf16/none,bf16/reduce-overhead
  { nvidia-smi; nvidia-smi -q; } > "$OUT/device.txt" 2>&1 || say "nvidia-smi failed"
fi
COMMON=(--device "$DEVICE" --threads 4 --out "$OUT" --modes "$MODES" "${TINY[@]}")

run_step() {  # name, seconds, command...
  local name=$1 limit=$2; shift 2
  local have; have=$(left)
  if [ "$have" -le 20 ]; then say "$name: skipped (time budget spent)"; return; fi
  [ "$limit" -gt "$have" ] && limit=$have
  say "$name: start (limit ${limit} s)"
  timeout --signal=INT --kill-after=10 "$limit" "$@" >>"$OUT/$name.log" 2>&1
  say "$name: exit $?"
}

# ---------------------------------------------------------------- the table
# the targets first (ViT-S/2 and BERT-base vs semilearn), then packing, then the rest
run_step speed-a 190 "$PY" benchmarks/speed.py "${COMMON[@]}" --settings "$SETS_A" \
  --budget-s 150 --tag a --write-calibration "$OUT/calibration.csv"
run_step packing 130 "$PY" benchmarks/speed.py --device "$DEVICE" --threads 2 --out "$OUT" \
  --settings vit_s2_32 --pack "$PACK" --pack-seconds "$PACK_S" --pack-warmup-s "$PACK_WARM" \
  --pack-mode "$( [ "$DEVICE" = cpu ] && echo none/none || echo bf16/none )" \
  --rounds 0 --no-semilearn --tag packing $( [ "$DEVICE" = cpu ] && echo --tiny )
run_step speed-b 150 "$PY" benchmarks/speed.py "${COMMON[@]}" --settings "$SETS_B" \
  --budget-s 110 --tag b --write-calibration "$OUT/calibration.csv"

cat "$OUT"/speed-a.md "$OUT"/speed-b.md "$OUT"/speed-packing.md > "$OUT/speed.md" 2>/dev/null
say "done: $OUT/speed.md, $OUT/calibration.csv (merge its rows into src/semibench/data/calibration.csv)"
