"""Interleaved rounds of both sides, and their statistics (medians, quartiles, ratios) as rows
and Markdown."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speedbench.calibration import step_gflops
from speedbench.semibench_side import SemiBenchSide, _is_compiled
from speedbench.semilearn_side import SemilearnSide
from speedbench.settings import Setting, label


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """(median, first quartile, third quartile)."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return statistics.median(values), q[0], q[2]


@dataclass
class Result:
    setting: str
    mode: str
    side: str
    step_ms: list[float] = field(default_factory=list)
    split_ms: dict[str, list[float]] = field(default_factory=dict)
    ratio: list[float] = field(default_factory=list)  # semilearn / SemiBench per round
    eval_ms_per_sample: float = float("nan")
    gflops: float = float("nan")
    eval_gflops_per_sample: float = float("nan")
    batch: str = ""
    note: str = ""


def bench_setting(s: Setting, mode: tuple[str, str], args: argparse.Namespace,
                  root: Path, log: Callable[[str], None]) -> list[Result]:
    """Interleaved rounds of both sides for one setting and mode."""
    amp, compile_mode = mode
    mode_name = f"{amp}/{compile_mode}"
    sb = SemiBenchSide(s, args.device, amp, compile_mode, root)
    sides: list[Any] = [sb]
    note = ""
    with_sl = (not args.no_semilearn and s.sl_net and amp == "none" and compile_mode == "none")
    if with_sl:
        try:
            sides.append(SemilearnSide(s, args.device, args.sl_workers, args.tiny))
        except Exception as err:  # say exactly why, time SemiBench alone
            note = f"semilearn not timed: {type(err).__name__}: {err}"
            log(note)
    results = {side.name: Result(s.name, mode_name, side.name, batch=label(s)) for side in sides}
    start = time.perf_counter()
    for side in sides:  # warm-up (and compilation)
        side.full(args.warmup)
        side.split()
    if compile_mode != "none":
        note = (note + "; " if note else "") + (
            f"warm-up incl. compilation {time.perf_counter() - start:.0f} s"
            if _is_compiled(sb.trainer)
            else "train.compile was set but the trainer did not compile the model (eager): "
            + "; ".join(getattr(sb.trainer, "fallbacks", [])))
    for r in range(args.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        per_round: dict[str, float] = {}
        for side in order:
            per_round[side.name] = side.full(args.steps)
            results[side.name].step_ms.append(per_round[side.name] * 1000)
            if args.split_every and r % args.split_every == 0:
                for k, v in side.split().items():
                    results[side.name].split_ms.setdefault(k, []).append(v * 1000)
        if len(sides) == 2:
            results["SemiBench"].ratio.append(per_round["semilearn"] / per_round["SemiBench"])
        log(f"  round {r + 1}/{args.rounds}: " + ", ".join(
            f"{k} {v * 1000:,.0f} ms/it" for k, v in per_round.items()))
    out = list(results.values())
    sb_result = results["SemiBench"]
    sb_result.note = note
    try:
        sb_result.gflops, sb_result.eval_gflops_per_sample = step_gflops(s)
        evb = 16 if not args.tiny else 4
        sb_result.eval_ms_per_sample = sb.eval_seconds(evb) * 1000 / evb
    except Exception as err:  # counting is a bonus here; the plan tests cover it
        sb_result.note += f"; FLOPs not counted: {err}"
    return out


def summarise(results: list[Result]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        med, q1, q3 = quantiles(r.step_ms)
        row: dict[str, Any] = {"setting": r.setting, "batch": r.batch, "mode": r.mode,
                               "side": r.side, "steps_timed": len(r.step_ms),
                               "ms_per_it": med, "ms_q1": q1, "ms_q3": q3}
        total = sum(statistics.median(v) for v in r.split_ms.values()) if r.split_ms else 0
        for phase in ("data", "forward", "backward", "optimizer"):
            v = r.split_ms.get(phase)
            row[f"{phase}_ms"] = statistics.median(v) if v else float("nan")
        row["data_share"] = (row["data_ms"] / total) if total else float("nan")
        if r.ratio:
            row["ratio_median"], row["ratio_q1"], row["ratio_q3"] = quantiles(r.ratio)
        row["gflops_per_step"] = r.gflops
        row["achieved_tflops"] = r.gflops / med if med == med and med > 0 else float("nan")
        row["eval_ms_per_sample"] = r.eval_ms_per_sample
        row["eval_gflops_per_sample"] = r.eval_gflops_per_sample
        row["note"] = r.note
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    lines = [header, "",
             "| setting | mode | side | ms/it median [IQR] | data / fwd / bwd / opt ms (split) "
             "| data share | semilearn / SemiBench median [IQR] | TFLOP/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = (f"{r['ratio_median']:.2f} [{r['ratio_q1']:.2f}-{r['ratio_q3']:.2f}]"
                 if "ratio_median" in r else "")
        split = " / ".join(f"{r[f'{p}_ms']:,.0f}" for p in ("data", "forward", "backward",
                                                           "optimizer"))
        share = f"{100 * r['data_share']:.1f} %" if r["data_share"] == r["data_share"] else ""
        tf = f"{r['achieved_tflops']:.3f}" if r["achieved_tflops"] == r["achieved_tflops"] else ""
        lines.append(f"| {r['batch']} | {r['mode']} | {r['side']} | {r['ms_per_it']:,.0f} "
                     f"[{r['ms_q1']:,.0f}-{r['ms_q3']:,.0f}] | {split} | {share} | {ratio} | "
                     f"{tf} |")
    notes = [f"- {r['batch']} {r['mode']}: {r['note'].strip('; ')}" for r in rows if r["note"]]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"
