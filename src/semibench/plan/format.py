"""The plan as text (``semibench plan``'s table, its device-hours and the disk it needs), a
per-job CSV and JSON-ready data."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

from semibench.plan.calibration import BASES
from semibench.plan.job import JobPlan, Plan
from semibench.plan.measured import ratio_text, ratios

#: USB's reported cost of evaluating FixMatch on its 15 tasks (paper abstract): 39 V100-days
USB_FIXMATCH_V100_DAYS = 39.0


def format_plan(plan: Plan) -> str:
    """The per-task table, totals, what the times assume and how far they may be off, as
    Markdown-style text."""
    tasks: dict[str, list[JobPlan]] = {}
    for job in plan.jobs:
        tasks.setdefault(job.task, []).append(job)
    measured = any(j.measured_s is not None for j in plan.jobs)
    lines = [f"# plan: {len(plan.jobs)} training jobs on {plan.device} (amp {plan.amp}, "
             f"compile {plan.compile})", "", *_assumptions(plan), "",
             "| task | backbone | jobs | iterations | GFLOP/step | eval TFLOP/job | time/job | "
             f"{plan.device}-hours | basis | rate |" + (" measured/planned |" if measured else ""),
             "|---|---|---:|---:|---:|---:|---:|---:|---|---|" + ("---:|" if measured else "")]
    for task, jobs in tasks.items():
        hours = sum(j.hours for j in jobs)
        steps = sorted(j.step_flops for j in jobs)
        step_text = (_amount(steps[0] / 1e9) if steps[0] == steps[-1]
                     else f"{_amount(steps[0] / 1e9)}-{_amount(steps[-1] / 1e9)}")
        rates = sorted({j.rate.source for j in jobs})
        bases = sorted({j.rate.basis for j in jobs}, key=list(BASES).index)
        row = (f"| {task} | {jobs[0].backbone} | {len(jobs)} | {jobs[0].iterations:,} | "
               f"{step_text} | {_amount(sum(j.eval_flops for j in jobs) / len(jobs) / 1e12)} | "
               f"{_duration(hours * 3600 / len(jobs))} | {hours:,.1f} | {', '.join(bases)} | "
               f"{'; '.join(rates)} |")
        if measured:
            row += f" {ratio_text(ratios(jobs)) or '-'} |"
        lines.append(row)
    total = plan.total_hours
    lines += ["", f"total: {total:,.1f} {plan.device}-hours = {total / 24:,.2f} "
              f"{plan.device}-days for {len(plan.jobs)} jobs "
              f"(planned in {plan.seconds:.1f} s)"]
    train = sum(j.step_flops * j.iterations for j in plan.jobs)
    evals = sum(j.eval_flops for j in plan.jobs)
    lines.append(f"FLOPs: {train / 1e18:,.1f} EFLOP training + {evals / 1e18:,.1f} EFLOP "
                 f"evaluation ({100 * evals / max(train + evals, 1):.0f} % evaluation)")
    lines += _disk_lines(plan)
    if plan.jobs and {j.algorithm for j in plan.jobs} == {"fixmatch"}:
        lines.append(f"reference: USB reports {USB_FIXMATCH_V100_DAYS:g} V100-days "
                     f"({USB_FIXMATCH_V100_DAYS * 24:,.0f} V100-hours) to evaluate FixMatch on "
                     f"its 15 tasks (paper abstract); this plan: {total / 24:,.2f} "
                     f"{plan.device}-days")
    lines.append(NOT_COUNTED)
    used = [b for b in BASES if any(j.rate.basis == b for j in plan.jobs)]
    lines += [f"basis {b}: {BASES[b]}" for b in used]
    if measured:
        lines.append(_measured_line(plan))
    notes = sorted({n for j in plan.jobs for n in j.notes})
    if notes:
        lines.append("notes: " + "; ".join(notes))
    if not plan.calibrated:
        lines.append(f"UNCALIBRATED: {plan.device} has no measured row in the calibration "
                     "table for these settings; the times use datasheet peak x the assumed "
                     "efficiency above (run benchmarks/device_speed.sh on the device and "
                     "ship its calibration.csv rows)")
    return "\n".join(lines)


#: what the time of a job leaves out (semibench.train: the job's process, not its loop)
NOT_COUNTED = ("not counted: each job's start-up (a fresh process imports torch, loads the "
               "prepared data, builds the model and, for text, tokenises every text: seconds "
               "per job; Snakemake's logs/benchmarks/train/ files include it, metrics.json's "
               "wall_time_s does not)")


#: how the disk line counts (semibench.plan.job.disk_bytes)
DISK_BASIS = ("disk counts parameters and buffers x 4 bytes per weight file (decimal units: "
              "1 GB = 10^9 bytes); a job's checkpoints are up to three generations at once "
              "(current, previous, one being written) of the model, its EMA copy where ema_m "
              "> 0 and the optimiser's moments (SGD with momentum 1, AdamW 2 per trained "
              "parameter), and model_best.pt where kept; not counted: an algorithm's own state (e.g. SimMatch's and "
              "CoMatch's memory banks) and the small files (metrics, curves, logs)")


def _disk_lines(plan: Plan) -> list[str]:
    """What the sweep leaves on disk (the weights ``train.keep_weights`` keeps) and what a
    training job holds until it finishes (its checkpoints)."""
    if not plan.jobs:
        return []
    keeps = sorted({j.keep_weights for j in plan.jobs})
    files = sum(j.kept_files for j in plan.jobs)
    both = sum(2 * j.weight_bytes for j in plan.jobs)
    other = "" if keeps == ["both"] else f"; both: {_bytes(both)}"
    peak = max(j.training_bytes for j in plan.jobs)
    return [f"disk: {_bytes(plan.kept_bytes)} of weights kept at the end ({files:,} file{'' if files == 1 else 's'}, "
            f"train.keep_weights {', '.join(keeps)}{other}); each training job holds up to "
            f"{_bytes(peak)} more until it finishes (its checkpoints)",
            DISK_BASIS]


def _bytes(amount: float) -> str:
    """``812 MB``, ``1.2 GB``, ``0.9 TB``: decimal units, two significant digits below 10."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if amount >= size:
            return f"{_amount(amount / size)} {unit}"
    return f"{amount:.0f} B"


def _assumptions(plan: Plan) -> list[str]:
    """What the times assume: the calibration's machine and threads, this machine, and the
    threads the config gives each job (the CPU's time depends on all of them)."""
    rates = [j.rate for j in plan.jobs if j.rate.calibrated]
    threads = _joined(r.threads for r in rates)
    cpus = _joined(r.cpu for r in rates)
    dates = _joined(r.measured for r in rates)
    out = []
    if rates:
        where = (cpus if cpus else "CPU not recorded in them") if plan.device == "cpu" \
            else plan.device
        out.append(f"assumes: the machine that measured its calibration rows ({where}; "
                   f"{threads or '?'} thread(s) per job; measured {dates or '?'})")
    else:
        out.append(f"assumes: {plan.device} at the stated fraction of its datasheet peak "
                   "(no calibration row)")
    if plan.machine and plan.device == "cpu":
        out.append(f"planned on: {plan.machine}")
    if plan.device == "cpu" and plan.threads is not None:
        line = f"the config runs each job on {plan.threads} CPU thread(s) (`threads`)"
        calibrated = [int(t) for t in threads.split(", ") if t.isdigit()]
        if calibrated and plan.threads < min(calibrated):
            line += (f"; the calibration used {threads}: expect jobs to take longer than "
                     f"planned, up to {min(calibrated) / plan.threads:g}x")
        elif calibrated and plan.threads > max(calibrated):
            line += f"; the calibration used {threads}: jobs may be faster than planned"
        out.append(line)
    return out


def _measured_line(plan: Plan) -> str:
    """How far the plan was from the finished runs of its jobs."""
    loop, whole = ratios(plan.jobs), ratios(plan.jobs, whole=True)
    line = (f"measured: {len(loop)} finished run(s) of these jobs on {plan.device}: training "
            f"loops took {ratio_text(loop)} the planned time (metrics.json wall_time_s)")
    if whole:
        line += f", whole jobs {ratio_text(whole)} (Snakemake benchmark files, start-up included)"
    return line


def _joined(values: Any) -> str:
    return ", ".join(sorted({p.strip() for v in values for p in str(v).split(",")} - {""}))


def _amount(x: float) -> str:
    """A count of GFLOP or TFLOP: two significant digits below 10."""
    if x == 0:
        return "0"
    return f"{x:.2g}" if x < 10 else f"{x:,.0f}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:,.1f} h"


def jobs_csv(plan: Plan, path: str | Path) -> None:
    """One row per job: FLOPs, hours and the rate source."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "num_labels", "algorithm", "seed", "backbone", "family",
                         "iterations", "step_gflops", "eval_tflops", "hours", "rate_source",
                         "basis", "calibration_threads", "measured_s", "job_s", "weight_mb",
                         "kept_files", "checkpoint_mb"])
        for j in plan.jobs:
            writer.writerow([j.task, j.num_labels, j.algorithm, j.seed, j.backbone, j.family,
                             j.iterations, f"{j.step_flops / 1e9:.3f}",
                             f"{j.eval_flops / 1e12:.3f}", f"{j.hours:.4f}", j.rate.source,
                             j.rate.basis, j.rate.threads, _optional(j.measured_s),
                             _optional(j.job_s), f"{j.weight_bytes / 1e6:.1f}", j.kept_files,
                             f"{j.checkpoint_bytes / 1e6:.1f}"])


def _optional(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.1f}"


def as_dict(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-ready data."""
    return {"device": plan.device, "amp": plan.amp, "compile": plan.compile,
            "total_hours": plan.total_hours, "calibrated": plan.calibrated,
            "kept_bytes": plan.kept_bytes,
            "threads": plan.threads, "machine": plan.machine,
            "jobs": [{**{k: v for k, v in dataclasses.asdict(j).items() if k != "rate"},
                      "rate": dataclasses.asdict(j.rate)} for j in plan.jobs]}
