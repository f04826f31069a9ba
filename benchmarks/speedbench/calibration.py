"""Counted FLOPs of a step and the achieved FLOP/s rows that ``semibench plan`` reads; the
device's name and modes."""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from speedbench.semibench_side import semibench_run
from speedbench.settings import SETTINGS, Setting


def step_gflops(s: Setting) -> tuple[float, float]:
    """Counted GFLOPs of a training step and of one eval sample (``semibench.plan``)."""
    from semibench.plan import plan_job

    run = semibench_run(s, "cpu", "none", "none")
    job = plan_job(run, "cpu", "none", "none",
                   [{"device": "cpu", "family": "x", "amp": "none", "compile": "none",
                     "train_tflops": "1", "eval_tflops": "1", "setting": "", "measured": ""}])
    from semibench.plan import build_backbone, per_sample_flops, sample_shape

    model, _ = build_backbone(run["backbone"], run["backbone_args"])
    shape, dtype = sample_shape(run, model)
    fwd, _, _ = per_sample_flops(run["backbone"], json.dumps(run["backbone_args"],
                                                            sort_keys=True), shape, dtype, False)
    return job.step_flops / 1e9, fwd / 1e9


def calibration_rows(rows: list[dict[str, Any]], device_name: str,
                     threads: int) -> list[dict[str, Any]]:
    """Achieved FLOP/s of SemiBench's full step per (device, family, amp, compile)."""
    from semibench.plan import backbone_family, cpu_model

    cpu = cpu_model() if device_name == "cpu" else ""  # the plan says which CPU it assumes
    out = []
    for r in rows:
        if r["side"] != "SemiBench" or math.isnan(r["achieved_tflops"]):
            continue
        amp, compile_mode = r["mode"].split("/")
        eval_tf = r["eval_gflops_per_sample"] / r["eval_ms_per_sample"]
        backbone = SETTINGS[r["setting"]].backbone
        out.append({"device": device_name, "family": backbone_family(backbone),
                    "backbone": backbone, "amp": amp, "compile": compile_mode,
                    "train_tflops": f"{r['achieved_tflops']:.4f}",
                    "eval_tflops": f"{eval_tf:.4f}", "setting": r["batch"],
                    "step_ms": f"{r['ms_per_it']:.1f}",
                    "step_gflops": f"{r['gflops_per_step']:.1f}", "threads": threads,
                    "torch": torch.__version__, "measured": time.strftime("%Y-%m-%d"),
                    "cpu": cpu})
    return out


def write_calibration(path: Path, new: list[dict[str, Any]]) -> None:
    """Merge ``new`` rows into the calibration CSV (same device/backbone/amp/compile
    replaced)."""
    from semibench.plan import CALIBRATION_COLUMNS
    from semibench.plan import CALIBRATION_KEY as key

    old = list(csv.DictReader(path.open(encoding="utf-8"))) if path.is_file() else []
    replaced = {tuple(str(r[k]) for k in key) for r in new}
    rows = [r for r in old if tuple(r.get(k, "") for k in key) not in replaced] + new
    rows.sort(key=lambda r: tuple(str(r[k]) for k in key))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CALIBRATION_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def device_label(device: str) -> str:
    """``cpu`` or the GPU's short name (``h200``, ``h100``, ...) for the calibration table."""
    if not device.startswith("cuda"):
        return "cpu"
    name = torch.cuda.get_device_name(torch.device(device)).lower()
    for short in ("h200", "h100", "a100", "l40s", "v100"):
        if short in name:
            return short
    return name.replace(" ", "_")


def default_modes(device: str) -> list[tuple[str, str]]:
    """Every compile/precision mode valid on the device."""
    if not device.startswith("cuda"):
        return [("none", "none")]
    modes = [("none", "none"), ("bf16", "none"), ("bf16", "reduce-overhead")]
    if not torch.cuda.is_bf16_supported():
        modes = [(a.replace("bf16", "fp16"), c) for a, c in modes]
    return modes
