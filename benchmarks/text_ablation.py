"""A small ablation of SSL on the default benchmark's text task (20 Newsgroups, 80 labels,
MiniLM-L6), issue #20 part 2: each setting changes one thing of the default FixMatch run.

    nice -n 10 .venv/bin/python benchmarks/text_ablation.py [--seeds 0 1]
        [--settings NAME ...] [--out benchmarks/out/text_ablation] [--work DIR]

Every run is SemiBench's own ``train_run`` on the run config that ``config/config.yaml``
resolves to (150 iterations, evaluation every 75, batch 8, uratio 1, AdamW lr 3e-4, 48 tokens,
top 2 of 6 layers trained, token-edit strong view, threshold 0.95), with the setting's one
change; the splits are the workflow's (``make_split``, 10 validation texts per class). Judged on
validation (the setting with the lowest mean validation error at its selected checkpoint),
reported on test. One CPU thread. Writes ``runs.csv`` and ``README.md`` to ``--out``; a run
already in ``--work`` (its metrics.json) is read, not retrained.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from text_vs_usb import prepare_data  # noqa: E402

TASK, NUM_LABELS = "newsgroups", 80
#: name -> (algorithm, the change to tasks.newsgroups)
SETTINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "supervised": ("supervised", {}),
    "fixmatch (default)": ("fixmatch", {}),
    "fixmatch, strong view none (dropout only)": (
        "fixmatch", {"augment": {"delete_prob": 0.0, "swap_prob": 0.0, "mask_prob": 0.0}}),
    "fixmatch, all layers trained": ("fixmatch", {"backbone_args": {"trainable_layers": None}}),
    "fixmatch, threshold 0.7": ("fixmatch", {"algorithm_params": {"fixmatch": {"p_cutoff": 0.7}}}),
    "softmatch": ("softmatch", {}),
    "freematch": ("freematch", {}),
}


def run_settings(config_path: Path, name: str, seed: int) -> dict[str, Any]:
    from semibench.config import check_config, run_config
    from semibench.config_file import read_yaml

    algorithm, change = SETTINGS[name]
    raw = read_yaml(config_path)
    task = raw["tasks"][TASK]
    task["algorithms"] = [algorithm]
    for key, value in change.items():
        if key == "algorithm_params":
            for alg, params in value.items():
                task.setdefault(key, {}).setdefault(alg, {}).update(params)
        else:
            task[key] = {**task.get(key, {}), **value}
    config = check_config(raw, base_dir=config_path.parent, weights="skip")
    return run_config(config, TASK, NUM_LABELS, algorithm, seed)


def one_run(config_path: Path, name: str, seed: int, prepared: Path, split: Path,
            out: Path) -> dict[str, Any]:
    from semibench.train.run import train_run

    cpu = None
    if not (out / "metrics.json").is_file():
        started = time.process_time()
        train_run(run_settings(config_path, name, seed), prepared, split, out)
        cpu = time.process_time() - started
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    with open(out / "curve.csv", encoding="utf-8") as f:
        last = list(csv.DictReader(f))[-1]
    best = metrics["best"]
    return {"setting": name, "seed": seed, "best_iteration": best["iteration"],
            "val_size": metrics.get("val_size"), "best_val_error": best["val_error"],
            "best_test_error": best["test_error"], "last_test_error": metrics["last"]["test_error"],
            "last_mask_ratio": last.get("mask_ratio") or "",
            "last_pseudo_label_acc": last.get("pseudo_label_acc") or "",
            "cpu_s": round(cpu, 1) if cpu is not None else ""}


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    seeds = sorted({r["seed"] for r in rows})
    names = [n for n in SETTINGS if any(r["setting"] == n for r in rows)]
    val = {n: statistics.mean(r["best_val_error"] for r in rows if r["setting"] == n)
           for n in names}
    chosen = min(val, key=val.get)
    lines = [
        "# SSL ablation on 20 Newsgroups (80 labels, MiniLM-L6, 150 iterations)", "",
        f"Written by `benchmarks/text_ablation.py`; seeds {seeds}; errors in %, mean ± std over "
        "seeds, at the checkpoint with the lowest validation error (validation: "
        f"{rows[0]['val_size']} texts per seed); pseudo-label columns at the last evaluation.",
        "",
        "| setting | val error | test error | last test error | mask ratio | pseudo-label acc |",
        "|:---|---:|---:|---:|---:|---:|",
    ]
    for n in names:
        rs = [r for r in rows if r["setting"] == n]
        mask = [float(r["last_mask_ratio"]) for r in rs if r["last_mask_ratio"] != ""]
        acc = [float(r["last_pseudo_label_acc"]) for r in rs if r["last_pseudo_label_acc"] != ""]
        mask_cell = f"{statistics.mean(mask):.2f}" if mask else "–"
        acc_cell = f"{statistics.mean(acc):.2f}" if acc else "–"
        lines.append(
            f"| {n}{' (lowest validation)' if n == chosen else ''} | "
            f"{mean_std([r['best_val_error'] for r in rs])} | "
            f"{mean_std([r['best_test_error'] for r in rs])} | "
            f"{mean_std([r['last_test_error'] for r in rs])} | {mask_cell} | {acc_cell} |")
    lines += ["", "Per run:", "", "| setting | seed | selected iteration | val | test | last test "
              "| CPU s |", "|:---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['seed']} | {r['best_iteration']} | "
                     f"{r['best_val_error']:.1f} | {r['best_test_error']:.2f} | "
                     f"{r['last_test_error']:.2f} | {r['cpu_s']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "text_ablation")
    p.add_argument("--work", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    work = args.work or Path(tempfile.mkdtemp(prefix="text_ablation-"))
    prepared, splits = prepare_data(work, args.seeds)
    rows = []
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.settings:
        for seed in args.seeds:
            slug = "".join(c if c.isalnum() else "-" for c in name).strip("-")
            rows.append(one_run(args.config, name, seed, prepared, splits[seed],
                                work / "runs" / slug / f"seed{seed}"))
            print(rows[-1], flush=True)
            with open(args.out / "runs.csv", "w", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
            (args.out / "README.md").write_text(markdown(rows), encoding="utf-8")


if __name__ == "__main__":
    main()
