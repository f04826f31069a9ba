"""Fake finished runs, written where the workflow writes them (tests of the report only).

The files have the trainer's format (``metrics.json`` with per-class accuracy and the resolved
config, ``curve.csv`` with pseudo-label columns, Snakemake's benchmark TSV), with numbers that
are a simple function of the run, so that a report can be built in seconds without training.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from semibench.report import layout

CLASSES = {"mnist": [str(i) for i in range(10)],
           "keywords": ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"],
           "newsgroups": [f"group{i}" for i in range(20)]}
DOMAINS = {"mnist": "image", "keywords": "audio", "newsgroups": "text"}
BASE_ERROR = {"supervised": 40.0, "fixmatch": 20.0, "flexmatch": 15.0, "fullysupervised": 5.0}
CURVE_HEADER = ("iteration,lr,loss,sup_loss,unsup_loss,mask_ratio,pseudo_label_acc,val_error,"
                "test_error,elapsed_s")


def config(benchmark: str = "fake", seeds=(0, 1),
           algorithms=("supervised", "fixmatch", "fullysupervised")) -> dict:
    return {"benchmark": benchmark, "seeds": list(seeds), "algorithms": list(algorithms),
            "tasks": {"mnist": {"num_labels": [20]}, "keywords": {"num_labels": [50]}},
            "train": {"device": "cpu"}}


def write_run(workdir: Path, benchmark: str, task: str, num_labels: int, algorithm: str,
              seed: int, benchmark_file: bool = True, *, domain: str | None = None,
              classes: list[str] | None = None, evaluations: int = 4,
              settings: dict | None = None) -> Path:
    """One finished run; returns its directory. A task of :data:`CLASSES` has its classes
    and domain; any other task names them (``domain``, ``classes``: ten classes by default).
    ``evaluations``: rows of ``curve.csv`` (every 100 iterations; the best is at 3/4 of
    them); ``settings``: the resolved settings recorded as ``config`` (default: a few)."""
    run_dir = workdir / layout.run_dir(benchmark, task, num_labels, algorithm, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    classes = classes or CLASSES.get(task) or [f"class{i}" for i in range(10)]
    domain = domain or DOMAINS.get(task, "image")
    last_it = 100 * evaluations
    best_it = 100 * max(1, round(0.75 * evaluations))
    # seeds 0-4 and the algorithms of BASE_ERROR as they always were; others spread out, so
    # that a large synthetic sweep has no ties (every error stays a percentage)
    base = BASE_ERROR.get(algorithm, 25.0 + sum(map(ord, algorithm)) % 17)
    error = base + 2.0 * (seed % 5) + 0.1 * (seed // 5) + (5.0 if task == "keywords" else 0.0)
    per_class = [max(0.0, min(100.0, 100 - error + 3 * ((i % 5) - 2))) for i in
                 range(len(classes))]
    metrics = {
        "task": task, "domain": domain, "num_labels": num_labels, "algorithm": algorithm,
        "seed": seed, "num_classes": len(classes), "classes": classes,
        "best": {"iteration": best_it, "val_error": error - 1, "test_error": error,
                 "test_per_class_accuracy": per_class},
        "last": {"iteration": last_it, "val_error": error, "test_error": error + 0.5,
                 "test_per_class_accuracy": per_class},
        "wall_time_s": 30.0 + 10.0 * seed + (20.0 if algorithm not in BASE_ERROR or
                                             algorithm in ("fixmatch", "flexmatch") else 0.0),
        "device": "cpu", "threads": 1, "text_strong_view": "",
        "versions": {"torch": "2.11.0"}, "inputs": {},
        "config": settings or {"task": task, "algorithm": algorithm, "train": {"amp": "bf16"}},
    }
    ssl = algorithm not in ("supervised", "fullysupervised")
    rows = [CURVE_HEADER]
    for it in range(100, last_it + 1, 100):
        frac = it / last_it
        val = error + 20 * (1 - frac) + (1 if it == last_it else 0)
        mask = f"{0.3 + 0.6 * frac + 0.02 * (seed % 5):.3f},{0.7 + 0.25 * frac:.3f}" if ssl else ","
        rows.append(f"{it},0.03,{2 - frac:.3f},{1 - frac / 2:.3f},{'0.2' if ssl else ''},{mask},"
                    f"{val:.3f},{val + 0.5:.3f},{it / 10:.1f}")
    (run_dir / "curve.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (run_dir / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    if benchmark_file:
        tsv = workdir / layout.train_benchmark(benchmark, task, num_labels, algorithm, seed)
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\t"
                       f"cpu_time\n{metrics['wall_time_s'] + 5:.2f}\t0:00:40\t900.5\t3000\t500"
                       f"\t600\t0\t0.5\t95\t{metrics['wall_time_s']:.2f}\n", encoding="utf-8")
    return run_dir


def table_rows(page: str, section: str) -> list[list[str]]:
    """The body rows of the tables of one section of the page, as cell texts."""
    body = page.split(f'<section id="{section}">', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows]
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in row] for row in cells if row]
