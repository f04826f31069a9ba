"""How long ``semibench status`` takes on a big sweep: a synthetic grid of fake run files.

The grid is config/usb.yaml with as many seeds as it takes to reach ``--runs`` (20,216 runs for
20,000). Its runs are written where the workflow writes them, in the trainer's and Snakemake's
formats: 80 % finished (``metrics.json`` of the trainer's fields and size, with the task's
per-class accuracies, and Snakemake's benchmark file), 1 % running (Snakemake's incomplete
marker and lock, a checkpoint record), 2 % interrupted, 1 % failed (a job log), the rest not
started. Then it times the whole command, as a user runs it (a fresh process: imports, the
config check, reading every run's files, the text), and the reading alone, in this process.

    python benchmarks/status_scale.py --runs 20000 --workdir /tmp/status_scale

The files stay in ``--workdir`` (about 15 KB per finished run) for reruns: a second run with
the same arguments reuses them (``--fresh`` writes them again).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def write_grid(workdir: Path, runs: int) -> Path:
    """The config and every run's files; returns the config's path."""
    from semibench.config import run_grid
    from semibench.config_file import check_config_file
    from semibench.report import layout
    from semibench.tasks import create_task

    base = yaml.safe_load((REPO / "config" / "usb.yaml").read_text())
    per_seed = len(run_grid(check_config_file(REPO / "config" / "usb.yaml", weights="skip")[0]))
    per_seed //= len(base["seeds"])
    base.update(benchmark="scale", seeds=list(range(math.ceil(runs / per_seed))))
    configfile = workdir / "scale.yaml"
    configfile.write_text(yaml.safe_dump(base, sort_keys=False))
    config, _ = check_config_file(configfile, weights="skip")
    grid = run_grid(config)
    classes: dict[str, int] = {}
    incomplete = workdir / ".snakemake" / "incomplete"
    incomplete.mkdir(parents=True, exist_ok=True)
    locked = []
    for i, (task, n, alg, seed) in enumerate(grid):
        out = workdir / layout.run_dir("scale", task, n, alg, seed)
        out.mkdir(parents=True, exist_ok=True)
        kind = i % 100
        if kind < 80:
            if task not in classes:
                classes[task] = create_task(config["tasks"][task].get("variant_of", task)
                                            ).num_classes
            _finished(workdir, out, task, n, alg, seed, classes[task])
            continue
        key = f"{layout.run_dir('scale', task, n, alg, seed)}/metrics.json"
        if kind < 84:  # running (1) or interrupted (3): a checkpoint record
            (out / "checkpoint.json").write_text(json.dumps(
                {"file": "checkpoint.pt", "sha256": "0" * 64, "next_iteration": 4096,
                 "iterations": 1048576, "elapsed_s": 3600.0}))
            (out / "history.log").write_text("2025-01-01 00:00:00 resumed from iteration 0\n")
            if kind == 80:
                name = base64.urlsafe_b64encode(key.encode()).decode()
                (incomplete / name).write_text(json.dumps({"external_jobid": str(i)}))
                locked.append(key)
        elif kind == 84:  # failed: its log
            log = workdir / f"logs/train/scale/{task}/{n}/{alg}/seed{seed}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("  5%|#  | 50/1000\rsemibench train: error: loss is NaN\n")
    locks = workdir / ".snakemake" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    (locks / "0.output.lock").write_text("\n".join(locked) + "\n")
    return configfile


def _finished(workdir: Path, out: Path, task: str, n: int, alg: str, seed: int,
              num_classes: int) -> None:
    from semibench.report import layout

    record = {"iteration": 1048576, "val_error": 12.5, "test_error": 13.25,
              "test_top5_error": 2.5, "test_balanced_error": 13.5, "test_macro_f1": 86.0,
              "test_gmean_recall": 85.0,
              "test_per_class_accuracy": [87.123456789] * num_classes}
    train = {"iterations": 1048576, "eval_every": 2048, "batch_size": 64, "uratio": 7,
             "eval_batch_size": 256, "optimizer": "sgd", "lr": 0.03, "momentum": 0.9,
             "weight_decay": 0.0005, "layer_decay": 1.0, "scheduler": "cosine",
             "warmup_iterations": 0, "ema_m": 0.999, "ema_warmup": True, "use_cat": True,
             "clip_grad": 0.0, "device": "auto", "amp": "bf16", "compile": "none",
             "prefetch": True, "memory_format": "auto"}
    metrics = {
        "task": task, "domain": "image", "num_labels": n, "algorithm": alg, "imbalance": None,
        "seed": seed, "num_classes": num_classes,
        "classes": [f"class_{c}" for c in range(num_classes)],
        "input_format": {"shape": [3, 32, 32]}, "best": record, "last": record,
        "wall_time_s": 5000.0 + seed, "device": "NVIDIA H100 80GB HBM3", "threads": 4,
        "text_strong_view": None, "precision": "bf16", "compile": "none",
        "memory_format": "channels_last", "joint_pass": True, "fallbacks": [],
        "versions": {"python": "3.11.9", "semibench": "0.9.0", "torch": "2.11.0"},
        "inputs": {"data_sha256": "a" * 64, "split_sha256": "b" * 64,
                   "backtranslations_sha256": None, "semibench_version": "0.9.0",
                   "semibench_code_sha256": "c" * 64},
        "config": {"task": task, "num_labels": n, "algorithm": alg, "seed": seed,
                   "backbone": "vit_small_patch2_32", "backbone_args": {"pretrained": True},
                   "augment": {}, "train": train, "algorithm_params": {"p_cutoff": 0.95}},
        "keep_weights": "best",
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    tsv = workdir / layout.train_benchmark("scale", task, n, alg, seed)
    tsv.parent.mkdir(parents=True, exist_ok=True)
    tsv.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\t"
                   f"cpu_time\n{5030.0 + seed:.2f}\t1:23:50\t9000\t30000\t5000\t6000\t0\t0\t95"
                   "\t5000\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20000)
    parser.add_argument("--workdir", default="/tmp/status_scale")
    parser.add_argument("--fresh", action="store_true", help="write the files again")
    args = parser.parse_args()
    workdir = Path(args.workdir) / str(args.runs)
    if args.fresh and workdir.exists():
        shutil.rmtree(workdir)
    configfile = workdir / "scale.yaml"
    if not configfile.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        configfile = write_grid(workdir, args.runs)
        print(f"wrote the grid in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "semibench.cli", "status", "--configfile",
                           str(configfile), "--directory", str(workdir), "--show", "3"],
                          capture_output=True, text=True, env=env, check=True)
    command = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    peak = after.ru_maxrss / 1024
    head = done.stdout.splitlines()
    print("\n".join(head[:2] + [line for line in head if line.startswith(("device", "ETA"))]))

    from semibench.cli.status import sweep_status
    from semibench.config_file import check_config_file

    config, _ = check_config_file(configfile, weights="skip")
    result = sweep_status(config, str(configfile), workdir)
    print(f"\n| runs | whole command (wall) | its CPU time | reading the files (wall) | peak "
          f"memory |\n|---:|---:|---:|---:|---:|\n| {len(result.runs):,} | {command:.1f} s | "
          f"{cpu:.1f} s | {result.seconds:.1f} s | {peak:.0f} MB |")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
          file=sys.stderr)


if __name__ == "__main__":
    main()
