"""Achieved FLOP/s per (device, backbone family, amp, compile): the calibration table
(``data/calibration.csv``, written by ``benchmarks/speed.py --write-calibration``), and
datasheet peaks x a stated efficiency for devices it lacks."""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from semibench.plan.errors import PlanError

DEFAULT_CALIBRATION = "calibration.csv"
CALIBRATION_COLUMNS = [
    "device", "family", "backbone", "amp", "compile", "train_tflops", "eval_tflops", "setting",
    "step_ms", "step_gflops", "threads", "torch", "measured", "cpu",
]  # fmt: skip
#: one calibration row per these columns (a newer measurement replaces an older one)
CALIBRATION_KEY = ("device", "backbone", "amp", "compile")
AMPS = ("none", "bf16", "fp16")
COMPILES = ("none", "default", "reduce-overhead")
#: dense peak FLOP/s of each known device from its datasheet (SXM parts; fp32 without TF32,
#: as PyTorch runs float32 matmuls by default), per precision; absent = the device lacks it
DEVICE_PEAKS: dict[str, dict[str, float]] = {
    "h200": {"none": 67e12, "bf16": 989e12, "fp16": 989e12},
    "h100": {"none": 67e12, "bf16": 989e12, "fp16": 989e12},
    "a100": {"none": 19.5e12, "bf16": 312e12, "fp16": 312e12},
    "l40s": {"none": 91.6e12, "bf16": 362e12, "fp16": 362e12},
    "v100": {"none": 15.7e12, "fp16": 125e12},
    "cpu": {"none": 0.0},
}
#: fraction of the peak that an uncalibrated device is assumed to reach, by (amp, compile).
#: From issue 9's H200 figures for a ViT-S/2 FixMatch step (0.87 TFLOP counted per step):
#: 34 ms fp32 eager = 0.38 of the fp32 peak, 6 ms bf16 + CUDA graphs = 0.15 of the bf16 peak;
#: bf16 eager and torch.compile's default mode are assumed at half and 3/4 of the graphs figure
#: (small per-op kernels, launch-bound at these batch sizes). Assumptions, not measurements.
FALLBACK_EFFICIENCY: dict[tuple[str, str], float] = {
    ("none", "none"): 0.38, ("none", "default"): 0.38, ("none", "reduce-overhead"): 0.38,
    ("bf16", "none"): 0.075, ("bf16", "default"): 0.11, ("bf16", "reduce-overhead"): 0.15,
    ("fp16", "none"): 0.075, ("fp16", "default"): 0.11, ("fp16", "reduce-overhead"): 0.15,
}


#: how a job's rate was found, best first, and how far its time may be off. Not measured for
#: every backbone: "measured" is the calibration's own claim (its rows time the real step of
#: that backbone); "borrowed" cites what the offline benchmark showed (issue 19: its small-CNN
#: and MiniLM jobs took 1.5-4.4x the planned time on the 2-core machine that calibrated it).
BASES: dict[str, str] = {
    "measured": "this backbone's own calibration row: expect the time within about 30 % on "
                "the machine and thread count that measured it, for steps of the measured size",
    "family": "another backbone of the same family: FLOP/s change with model and batch size; "
              "may be off by up to 2x",
    "borrowed": "UNCALIBRATED FOR THIS FAMILY: other families' FLOP/s; may be off by 2-4x, "
                "mostly too low for small models (their steps are spent in views and Python, "
                "not FLOPs: the offline benchmark's CNN and MiniLM jobs took 1.5-4.4x the "
                "planned time)",
    "datasheet": "uncalibrated device: datasheet peak x an assumed efficiency; may be off by "
                 "2-4x",
}


@dataclass(frozen=True)
class Rate:
    """Achieved FLOP/s used for one job, and where it came from: ``basis`` is a key of
    :data:`BASES`; ``threads``, ``cpu`` and ``measured`` describe the calibration rows used
    (empty where they do not say, or for a datasheet rate)."""

    train: float
    eval: float
    source: str
    calibrated: bool
    basis: str = "measured"
    threads: str = ""
    cpu: str = ""
    measured: str = ""


def read_calibration(path: str | Path | None = None) -> list[dict[str, str]]:
    """Rows of the calibration CSV (the shipped one by default)."""
    if path is None:
        text = resources.files("semibench").joinpath("data", DEFAULT_CALIBRATION).read_text(
            encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def check_device(device: str, amp: str, compile_mode: str) -> None:
    """Refuse (one line) an unknown device, precision or compile mode, or a precision the
    device lacks."""
    if device not in DEVICE_PEAKS:
        raise PlanError(f"unknown device {device!r}; known: {', '.join(DEVICE_PEAKS)}")
    if amp not in AMPS:
        raise PlanError(f"--amp {amp!r}: allowed: {', '.join(AMPS)}")
    if compile_mode not in COMPILES:
        raise PlanError(f"--compile {compile_mode!r}: allowed: {', '.join(COMPILES)}")
    if amp not in DEVICE_PEAKS[device]:
        have = ", ".join(DEVICE_PEAKS[device])
        raise PlanError(f"device {device} has no {amp} support (precisions: {have})")


def lookup_rate(rows: list[dict[str, str]], device: str, family: str, amp: str,
                compile_mode: str, backbone: str = "") -> Rate:
    """Achieved FLOP/s for (device, backbone or family, amp, compile): the row measured on
    this backbone, else the median of this family's rows on the device, else the median of
    the device's rows of other families, else peak x :data:`FALLBACK_EFFICIENCY`."""
    same = [r for r in rows if r["device"] == device and r["amp"] == amp
            and r["compile"] == compile_mode]
    exact = [r for r in same if backbone and r.get("backbone") == backbone]
    if exact:
        r = exact[-1]
        return Rate(float(r["train_tflops"]) * 1e12, float(r["eval_tflops"]) * 1e12,
                    f"calibrated ({r['setting']}, {r['measured']})", True, "measured",
                    **_described([r]))
    family_rows = [r for r in same if r["family"] == family]
    for group, what in ((family_rows, None), (same, family)):
        if group:
            train = statistics.median(float(r["train_tflops"]) for r in group)
            evals = statistics.median(float(r["eval_tflops"]) for r in group)
            names = ", ".join(sorted({r["setting"] for r in group}))
            where = f"calibrated on {names}" + (
                f", borrowed for {what} (no {device} row of {what})" if what else "")
            return Rate(train * 1e12, evals * 1e12, where, True,
                        "borrowed" if what else "family", **_described(group))
    peak = DEVICE_PEAKS[device][amp]
    if peak <= 0:
        raise PlanError(f"device {device} is not calibrated for amp={amp} compile={compile_mode} "
                        "and has no datasheet peak: run benchmarks/speed.py --write-calibration")
    eff = FALLBACK_EFFICIENCY[(amp, compile_mode)]
    return Rate(peak * eff, peak * eff,
                f"uncalibrated: {peak / 1e12:.0f} TFLOP/s peak x {eff:.3f}", False, "datasheet")


def _described(rows: list[dict[str, str]]) -> dict[str, str]:
    """Threads, CPU and dates of calibration rows, each as its distinct values."""
    def values(key: str) -> str:
        return ", ".join(sorted({str(r.get(key) or "").strip() for r in rows} - {""}))

    return {"threads": values("threads"), "cpu": values("cpu"), "measured": values("measured")}


def cpu_model() -> str:
    """This machine's CPU, as ``/proc/cpuinfo`` names it (else the platform's name for it)."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
