"""The plan as text (``semibench plan``'s table), a per-job CSV and JSON-ready data."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

from semibench.plan.job import JobPlan, Plan

#: USB's reported cost of evaluating FixMatch on its 15 tasks (paper abstract): 39 V100-days
USB_FIXMATCH_V100_DAYS = 39.0


def format_plan(plan: Plan) -> str:
    """The per-task table, totals and the calibration used, as Markdown-style text."""
    tasks: dict[str, list[JobPlan]] = {}
    for job in plan.jobs:
        tasks.setdefault(job.task, []).append(job)
    lines = [f"# plan: {len(plan.jobs)} training jobs on {plan.device} (amp {plan.amp}, "
             f"compile {plan.compile})", "",
             "| task | backbone | jobs | iterations | GFLOP/step | eval TFLOP/job | h/job | "
             f"{plan.device}-hours | rate |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for task, jobs in tasks.items():
        hours = sum(j.hours for j in jobs)
        steps = sorted(j.step_flops for j in jobs)
        step_text = (f"{steps[0] / 1e9:,.0f}" if steps[0] == steps[-1]
                     else f"{steps[0] / 1e9:,.0f}-{steps[-1] / 1e9:,.0f}")
        rates = sorted({j.rate.source for j in jobs})
        lines.append(
            f"| {task} | {jobs[0].backbone} | {len(jobs)} | {jobs[0].iterations:,} | "
            f"{step_text} | {sum(j.eval_flops for j in jobs) / len(jobs) / 1e12:,.0f} | "
            f"{hours / len(jobs):,.2f} | {hours:,.1f} | {'; '.join(rates)} |")
    total = plan.total_hours
    lines += ["", f"total: {total:,.1f} {plan.device}-hours = {total / 24:,.2f} "
              f"{plan.device}-days for {len(plan.jobs)} jobs "
              f"(planned in {plan.seconds:.1f} s)"]
    train = sum(j.step_flops * j.iterations for j in plan.jobs)
    evals = sum(j.eval_flops for j in plan.jobs)
    lines.append(f"FLOPs: {train / 1e18:,.1f} EFLOP training + {evals / 1e18:,.1f} EFLOP "
                 f"evaluation ({100 * evals / max(train + evals, 1):.0f} % evaluation)")
    if plan.jobs and {j.algorithm for j in plan.jobs} == {"fixmatch"}:
        lines.append(f"reference: USB reports {USB_FIXMATCH_V100_DAYS:g} V100-days "
                     f"({USB_FIXMATCH_V100_DAYS * 24:,.0f} V100-hours) to evaluate FixMatch on "
                     f"its 15 tasks (paper abstract); this plan: {total / 24:,.2f} "
                     f"{plan.device}-days")
    notes = sorted({n for j in plan.jobs for n in j.notes})
    if notes:
        lines.append("notes: " + "; ".join(notes))
    if not plan.calibrated:
        lines.append(f"UNCALIBRATED: {plan.device} has no measured row in the calibration "
                     "table for these settings; the times use datasheet peak x the assumed "
                     "efficiency above (run benchmarks/device_speed.sh on the device and "
                     "ship its calibration.csv rows)")
    return "\n".join(lines)


def jobs_csv(plan: Plan, path: str | Path) -> None:
    """One row per job: FLOPs, hours and the rate source."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "num_labels", "algorithm", "seed", "backbone", "family",
                         "iterations", "step_gflops", "eval_tflops", "hours", "rate_source"])
        for j in plan.jobs:
            writer.writerow([j.task, j.num_labels, j.algorithm, j.seed, j.backbone, j.family,
                             j.iterations, f"{j.step_flops / 1e9:.3f}",
                             f"{j.eval_flops / 1e12:.3f}", f"{j.hours:.4f}", j.rate.source])


def as_dict(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-ready data."""
    return {"device": plan.device, "amp": plan.amp, "compile": plan.compile,
            "total_hours": plan.total_hours, "calibrated": plan.calibrated,
            "jobs": [{**{k: v for k, v in dataclasses.asdict(j).items() if k != "rate"},
                      "rate": dataclasses.asdict(j.rate)} for j in plan.jobs]}
