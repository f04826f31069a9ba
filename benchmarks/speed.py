"""Time a FixMatch training iteration of each USB setting, SemiBench next to semilearn 0.3.2.

    .venv/bin/python benchmarks/speed.py --quick --threads 2 --settings vit_s2_32,wrn_28_2
    .venv/bin/python benchmarks/speed.py --device cuda --write-calibration   # on a GPU

SemiBench's full step is ``Trainer.train_step`` (the real trainer, on synthetic prepared data
written to a temporary directory: random uint8 images, random waveforms, texts of random
vocabulary words long enough to fill 512 tokens). Its split into data / forward / backward /
optimizer comes from a separate timing harness around the same pieces (``make_batch``,
``algorithm.forward`` + ``compute_loss``, ``backward``, optimiser + scheduler + EMA), with
``torch.cuda.synchronize`` between the phases on a GPU, so the split steps are slower than the
full ones there; "data" is the inline cost of the views, which prefetching may hide.

semilearn's side is its own code at the same sizes: its nets (random weights), its FixMatch
``train_step`` and hooks (``ParamUpdateHook``, ``EMAHook``; on a GPU also its ``TimerHook``,
which synchronises twice per step), its ``BasicDataset`` with the transforms of its CIFAR /
STL-10 / Semi-Aves loaders and its ``get_data_loader`` (``--sl-workers`` loader workers for
the labelled batch, twice that for the unlabelled one, as USB does). Images are in-memory
arrays (Semi-Aves' JPEG decoding is not timed). For BERT and HuBERT only semilearn's model step
is timed (pre-built tensors: its collators load a tokenizer / feature extractor from the
Hugging Face hub). semilearn runs in fp32 eager (USB's default ``amp: False``).

The two sides are interleaved: each round runs a block of full steps of one side, then of the
other (the order alternates), so drifting load hits both; the ratio is taken per round and
reported as median and inter-quartile range. Results go to ``benchmarks/out/`` (CSV + Markdown);
``--write-calibration`` writes achieved FLOP/s rows for ``semibench plan``.

semilearn is imported from ``benchmarks/.semilearn`` (``make bench-deps``); a few modules it
imports at package import but never calls in this step (scikit-image for MedMNIST montages,
TensorBoard's SummaryWriter, wandb, aim) are replaced by empty stand-ins.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # speedbench/, also when loaded by path

from speedbench.calibration import (  # noqa: E402, F401
    calibration_rows,
    default_modes,
    device_label,
    step_gflops,
    write_calibration,
)
from speedbench.measure import Result, bench_setting, markdown, quantiles, summarise  # noqa: E402, F401
from speedbench.packing import pack_worker, run_packing  # noqa: E402
from speedbench.semibench_side import SemiBenchSide, semibench_run, write_synthetic  # noqa: E402, F401
from speedbench.semilearn_side import SemilearnSide, import_semilearn  # noqa: E402, F401
from speedbench.settings import (  # noqa: E402, F401
    OUT_DIR,
    ROOT,
    SEMILEARN_DIR,
    SETTINGS,
    Setting,
    label,
    quick_setting,
    tiny_setting,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settings", default="",
                   help=f"comma-separated, of: {', '.join(SETTINGS)} (default: all; --quick: "
                   "vit_s2_32,wrn_28_2)")
    p.add_argument("--quick", action="store_true",
                   help="CPU sizes: WRN 16+112 (unless --wrn-full), BERT 128 tokens, HuBERT 1 s")
    p.add_argument("--wrn-full", action="store_true", help="WRN-28-2 at 64+448 with --quick")
    p.add_argument("--tiny", action="store_true", help="toy models and batches (a dry run)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--modes", default="",
                   help="amp/compile pairs, e.g. none/none,bf16/reduce-overhead (default: every "
                   "mode valid on the device)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=2, help="full steps per side per round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--split-every", type=int, default=2,
                   help="a split (phase-timed) step every this many rounds; 0 = never")
    p.add_argument("--sl-workers", type=int, default=1,
                   help="semilearn's labelled-loader workers (the unlabelled loader gets twice)")
    p.add_argument("--no-semilearn", action="store_true")
    p.add_argument("--budget-s", type=float, default=0,
                   help="start no new setting/mode after this many seconds (0 = no limit)")
    p.add_argument("--out", default=str(OUT_DIR))
    p.add_argument("--tag", default="", help="suffix of the output file names")
    p.add_argument("--write-calibration", nargs="?", const="", default=None,
                   help="merge achieved FLOP/s into this calibration CSV (default: the "
                   "package's src/semibench/data/calibration.csv)")
    p.add_argument("--pack", default="", help="packing: numbers of concurrent jobs, e.g. 1,2,4,8")
    p.add_argument("--pack-setting", default="vit_s2_32")
    p.add_argument("--pack-mode", default="bf16/none")
    p.add_argument("--pack-seconds", type=float, default=15)
    p.add_argument("--pack-warmup-s", type=float, default=45)
    p.add_argument("--pack-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--pack-start", type=float, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda: no usable CUDA device on this machine")
    args.pack = [int(n) for n in args.pack.split(",") if n]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    if args.pack_worker:
        pack_worker(args)
        return 0

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    names = [n for n in args.settings.split(",") if n] or (
        ["vit_s2_32", "wrn_28_2"] if args.quick else list(SETTINGS))
    if args.rounds == 0:  # packing only
        names = []
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        log(f"speed.py: error: unknown setting(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(SETTINGS)}")
        return 2
    modes = ([tuple(m.split("/")) for m in args.modes.split(",") if m]
             or default_modes(args.device))
    bad = [f"{a}/{c}" for a, c in modes if a not in ("none", "bf16", "fp16")
           or c not in ("none", "default", "reduce-overhead")
           or (not args.device.startswith("cuda") and (a != "none" or c == "reduce-overhead"))]
    if bad:
        log(f"speed.py: error: mode(s) {', '.join(bad)} not valid on {args.device} "
            "(amp none|bf16|fp16 / compile none|default|reduce-overhead; the CPU: none/none "
            "or none/default)")
        return 2
    Path(args.out).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: list[Result] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(names):
            s = SETTINGS[name]
            s = quick_setting(s, args.wrn_full) if args.quick else s
            s = tiny_setting(s) if args.tiny else s
            for j, mode in enumerate(modes):
                if args.budget_s and time.perf_counter() - started > args.budget_s:
                    skipped.append(f"{name} {mode[0]}/{mode[1]}")
                    continue
                log(f"{label(s)} {mode[0]}/{mode[1]} on {args.device} ({args.threads} threads)")
                root = Path(tmp) / f"{i}-{j}"
                root.mkdir()
                try:
                    results += bench_setting(s, mode, args, root, log)
                except Exception as err:  # one failing setting does not lose the others
                    log(f"  failed: {type(err).__name__}: {err}")
                    skipped.append(f"{name} {mode[0]}/{mode[1]} (failed: {err})")
                write_outputs(args, results, skipped, [], log)
    packing = run_packing(args, log) if args.pack else []
    write_outputs(args, results, skipped, packing, log, final=True)
    return 0 if results or packing else 1


def write_outputs(args: argparse.Namespace, results: list[Result], skipped: list[str],
                  packing: list[dict[str, Any]], log: Callable[[str], None],
                  final: bool = False) -> None:
    """CSV + Markdown (and the calibration) of what has been measured so far: written after
    every setting, so a run stopped by its time limit keeps its figures."""
    out = Path(args.out)
    rows = summarise(results)
    device_name = device_label(args.device)
    load = os.getloadavg()
    header = (f"# speed: FixMatch step on {device_name} "
              f"({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'}), "
              f"torch {torch.__version__}, {args.threads} threads, {args.rounds} rounds x "
              f"{args.steps} steps per side, load average {load[0]:.1f}/{load[1]:.1f}/"
              f"{load[2]:.1f}")
    text = markdown(rows, header) if rows else ""
    if skipped:
        text += "\nnot run: " + "; ".join(skipped) + "\n"
    if packing:
        text += ("## packing " + f"{args.pack_setting} {args.pack_mode}\n\n| jobs | steps/s | "
                 "gain vs one |\n|---:|---:|---:|\n" + "".join(
                     f"| {r['jobs']} | {r['steps_per_s']:.2f} | {r.get('gain_vs_one', 0):.2f} |\n"
                     for r in packing))
    tag = f"-{args.tag}" if args.tag else ""
    if rows:
        with (out / f"speed{tag}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) + ["ratio_median",
                                                                        "ratio_q1", "ratio_q3"],
                                    extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    if packing:
        with (out / f"packing{tag}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(packing[-1]))
            writer.writeheader()
            writer.writerows(packing)
    (out / f"speed{tag}.md").write_text(text, encoding="utf-8")
    if args.write_calibration is not None and rows:
        path = (Path(args.write_calibration) if args.write_calibration
                else ROOT / "src" / "semibench" / "data" / "calibration.csv")
        new = calibration_rows(rows, device_name, args.threads)
        write_calibration(path, new)
        if final:
            log(f"calibration: {len(new)} row(s) merged into {path}")
    if final:
        print(text)

if __name__ == "__main__":
    sys.exit(main())
