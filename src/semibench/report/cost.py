"""What the benchmark cost: training time and device-hours per run, algorithm and task.

Two sources, both per run: the trainer's ``wall_time_s`` in ``metrics.json`` (the training
loop's own clock, summed over every resume of the run) and Snakemake's benchmark file of the
``train`` job (the whole job: start-up, data loading, evaluation; peak resident memory and
CPU time; only the last attempt when a job was retried). A run uses one device, one GPU or
the CPU (with ``threads`` threads), so its device-hours are its training hours.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from semibench.report.formatting import format_hours
from semibench.report.frames import order_algorithms

COST_COLUMNS: tuple[str, ...] = (
    "task", "algorithm", "runs", "device", "precision", "training_h", "device_h",
    "mean_run_min", "job_h", "job_cpu_h", "peak_rss_gb",
)


def _join(values: pd.Series) -> str:
    return ", ".join(sorted({str(v) for v in values if isinstance(v, str) and v}))


def cost_table(runs: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Costs grouped by ``keys`` (e.g. ``["task", "algorithm"]``, ``["algorithm"]``, or
    ``[]`` for the total): number of runs, devices and precisions used, training hours (=
    device-hours), mean minutes per run, Snakemake job hours and CPU hours, peak memory."""
    if runs.empty:
        return pd.DataFrame(columns=[*keys, *COST_COLUMNS[2:]])
    frame = runs.assign(_all="all")
    by = list(keys) or ["_all"]
    rows = []
    for key, g in frame.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        job = g["job_wall_s"].astype(float) if "job_wall_s" in g else pd.Series(np.nan)
        cpu = g["job_cpu_s"].astype(float) if "job_cpu_s" in g else pd.Series(np.nan)
        rss = g["job_max_rss_mb"].astype(float) if "job_max_rss_mb" in g else pd.Series(np.nan)
        training_s = float(g["wall_time_s"].sum())
        rows.append({
            **({k: v for k, v in zip(by, key, strict=True)} if keys else {}),
            "runs": len(g),
            "device": _join(g["device"]),
            "precision": _join(g["precision"]) if "precision" in g else "",
            "training_h": training_s / 3600,
            "device_h": training_s / 3600,
            "mean_run_min": float(g["wall_time_s"].mean()) / 60,
            "job_h": float(job.sum()) / 3600 if job.notna().any() else np.nan,
            "job_cpu_h": float(cpu.sum()) / 3600 if cpu.notna().any() else np.nan,
            "peak_rss_gb": float(rss.max()) / 1024 if rss.notna().any() else np.nan,
        })
    out = pd.DataFrame(rows)
    if keys:
        order = {a: i for i, a in enumerate(order_algorithms(out.get("algorithm", [])))}
        out = out.sort_values(list(keys), kind="mergesort", key=lambda s: s.map(order)
                              if s.name == "algorithm" else s).reset_index(drop=True)
    return out


def cost_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """``cost.csv``: per (task, algorithm), then per algorithm (task "all"), per task
    (algorithm "all") and the total (both "all")."""
    parts = [
        cost_table(runs, ["task", "algorithm"]),
        cost_table(runs, ["algorithm"]).assign(task="all"),
        cost_table(runs, ["task"]).assign(algorithm="all"),
        cost_table(runs, []).assign(task="all", algorithm="all"),
    ]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=list(COST_COLUMNS))
    return pd.concat(parts, ignore_index=True)[list(COST_COLUMNS)]


def device_statement(runs: pd.DataFrame) -> str:
    """One sentence: which devices, precision and threads the runs used, and the total."""
    if runs.empty:
        return "No finished runs."
    if "precision" not in runs:
        runs = runs.assign(precision="not recorded")
    parts = []
    for (device, precision), g in runs.groupby(["device", "precision"], sort=True):
        threads = sorted({int(t) for t in g.get("threads", pd.Series(dtype=float)).dropna()})
        detail = (f", {'/'.join(map(str, threads))} thread{'s' if threads != [1] else ''} per run"
                  if device == "cpu" and threads else "")
        parts.append(f"{len(g)} run{'s' if len(g) != 1 else ''} on {device} ({precision}"
                     f"{detail}): {format_hours(float(g['wall_time_s'].sum()))} device-hours")
    total = format_hours(float(runs["wall_time_s"].sum()))
    return "; ".join(parts) + f". Total: {total} device-hours of training."
