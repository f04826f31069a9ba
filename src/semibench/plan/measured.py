"""Finished runs of a planned config, read back so that the plan says how far it was from what
the same jobs really took (on the same kind of device), instead of asking to be trusted."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from semibench.plan.job import JobPlan, Plan


def run_dir(results_root: Path, benchmark: str, job: JobPlan) -> Path:
    """Where the workflow writes the job's run (``RUN_DIR`` of ``workflow/rules/common.smk``)."""
    return (Path(results_root) / benchmark / "runs" / job.task / str(job.num_labels)
            / job.algorithm / f"seed{job.seed}")


def benchmark_file(logs_root: Path, benchmark: str, job: JobPlan) -> Path:
    """Snakemake's benchmark file of the job's train rule (the whole job's wall time)."""
    return (Path(logs_root) / "benchmarks" / "train" / benchmark / job.task
            / str(job.num_labels) / job.algorithm / f"seed{job.seed}.tsv")


def same_device(planned: str, recorded: str) -> bool:
    """Whether a run's recorded device (``cpu`` or the GPU's name) is the planned one."""
    return recorded.lower() == "cpu" if planned == "cpu" else planned in recorded.lower()


def attach_measured(plan: Plan, benchmark: str, results_root: str | Path = "results",
                    logs_root: str | Path | None = None) -> int:
    """Fill ``measured_s`` (the training loop, metrics.json's ``wall_time_s``) and ``job_s``
    (the whole job, start-up included) of every job with a finished run on the planned
    device; return how many have one. ``logs_root`` defaults to ``logs`` beside
    ``results_root``."""
    logs = Path(logs_root) if logs_root is not None else Path(results_root).parent / "logs"
    found = 0
    for job in plan.jobs:
        path = run_dir(Path(results_root), benchmark, job) / "metrics.json"
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
            wall, device = float(metrics["wall_time_s"]), str(metrics["device"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not same_device(plan.device, device):
            continue
        job.measured_s, found = wall, found + 1
        job.job_s = _benchmark_seconds(benchmark_file(logs, benchmark, job))
    return found


def _benchmark_seconds(path: Path) -> float | None:
    try:
        with path.open(encoding="utf-8") as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        return float(row["s"])
    except (OSError, StopIteration, KeyError, ValueError, TypeError):
        return None


def ratios(jobs: list[JobPlan], whole: bool = False) -> list[float]:
    """Measured / planned time of the jobs that have a measurement."""
    out = []
    for job in jobs:
        seconds = job.job_s if whole else job.measured_s
        if seconds is not None and job.hours > 0:
            out.append(seconds / (job.hours * 3600))
    return out


def ratio_text(values: list[float]) -> str:
    """``2.9x (n 4, 1.5-4.4x)``: the median and range of measured / planned."""
    if not values:
        return ""
    low, high = min(values), max(values)
    spread = f", {low:.1f}-{high:.1f}x" if len(values) > 1 else ""
    return f"{statistics.median(values):.1f}x (n {len(values)}{spread})"
