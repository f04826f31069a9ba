"""The plan of a config's grid: FLOPs and hours per training job, from the counts, the shapes
and the calibration."""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from semibench.plan.calibration import (
    Rate,
    check_device,
    cpu_model,
    lookup_rate,
    read_calibration,
)
from semibench.plan.counting import _head_json, per_sample_flops, step_shape
from semibench.plan.models import backbone_family, build_backbone
from semibench.plan.shapes import (
    eval_sizes,
    evaluated_text_length,
    sample_shape,
    trimmed_text_length,
)


@dataclass
class JobPlan:
    task: str
    num_labels: int
    algorithm: str
    seed: int
    backbone: str
    family: str
    iterations: int
    step_flops: float
    eval_flops: float
    hours: float
    rate: Rate
    notes: list[str] = field(default_factory=list)
    #: a finished run of this job on the planned device (``semibench.plan.measured``): its
    #: training loop's wall time (metrics.json) and the whole job's (Snakemake's benchmark
    #: file: start-up included), in seconds; None where there is none
    measured_s: float | None = None
    job_s: float | None = None

    @property
    def total_flops(self) -> float:
        return self.step_flops * self.iterations + self.eval_flops


def plan_job(run: dict[str, Any], device: str, amp: str | None, compile_mode: str | None,
             rows: list[dict[str, str]], prepared_root: Path | None = None) -> JobPlan:
    """FLOPs and time of one resolved training run; ``amp`` / ``compile_mode`` override the
    run's own ``train.amp`` / ``train.compile`` when given (the CPU always runs fp32 eager)."""
    from semibench.spec import run_label
    from semibench.tasks import create_task
    from semibench.train.config import TrainConfig
    from semibench.train.loop import has_batch_norm
    from semibench.variants import run_base_task

    base = run_base_task(run)  # a variant's registered task: its data, classes and sizes
    task = create_task(base)
    cfg = TrainConfig.from_dict(run["train"])
    name, args = run["backbone"], run.get("backbone_args", {})
    args_json = json.dumps(args, sort_keys=True)
    model, how = build_backbone(name, args)
    shape, dtype = sample_shape(run, model)
    num_lb = run["num_labels"]
    composed = {k: run[k] for k in ("algorithm", "imbalance", "algorithm_params",
                                    "imbalance_params") if k in run}  # semibench.compose reads
    shape_of_step = step_shape(
        run["algorithm"], json.dumps(composed, sort_keys=True), task.domain,
        task.num_classes, cfg.batch_size, cfg.uratio, cfg.use_cat and has_batch_norm(model),
        cfg.ema_m > 0,
        int(model.num_features), _head_json(model), len(shape), dtype)
    notes = [] if how == "random weights" else [how]
    step = float(shape_of_step.head_flops)
    eval_shape = shape
    if task.domain == "text":
        kept = evaluated = None
        if prepared_root is not None:
            kept = trimmed_text_length(model, base, Path(prepared_root),
                                       cfg.batch_size * max(cfg.uratio, 1))
            evaluated = evaluated_text_length(model, base, Path(prepared_root),
                                              cfg.eval_batch_size)
        if kept is not None and evaluated is not None:
            notes.append(f"{base}: text trimmed to {kept} (evaluation {evaluated}) of "
                         f"{shape[0]} tokens (measured)")
            shape, eval_shape = (kept,), (evaluated,)
        elif getattr(model, "trim_multiple", 0):
            notes.append(f"text counted at max_length ({shape[0]} tokens): an upper bound, since "
                         "padding is trimmed per batch; with prepared data (--prepared-root) the "
                         "plan measures them")
    fwd, bwd, _ = per_sample_flops(name, args_json, shape, dtype, True)
    for batch, _grad, backward in shape_of_step.passes:
        step += batch * (fwd + (bwd if backward else 0))
    n_val, n_test, source = eval_sizes(base, prepared_root)
    if source != "documented sizes":
        notes.append(f"eval sizes {source}")
    evals = math.ceil(cfg.iterations / cfg.eval_every)
    fwd_eval, _, _ = per_sample_flops(name, args_json, eval_shape, dtype, False)
    eval_flops = fwd_eval * (n_val + n_test) * evals
    run_amp = "none" if device == "cpu" else (amp or cfg.amp)
    run_compile = "none" if device == "cpu" else (compile_mode or getattr(cfg, "compile", "none"))
    check_device(device, run_amp, run_compile)
    rate = lookup_rate(rows, device, backbone_family(name), run_amp, run_compile, name)
    seconds = step * cfg.iterations / rate.train + eval_flops / rate.eval
    label = run_label(run["algorithm"], run.get("imbalance"), run.get("sweep"))
    return JobPlan(run["task"], num_lb, label, run["seed"], name,
                   backbone_family(name), cfg.iterations, step, eval_flops, seconds / 3600,
                   rate, notes)


@dataclass
class Plan:
    device: str
    amp: str
    compile: str
    jobs: list[JobPlan]
    seconds: float  # how long planning took
    #: CPU threads the config gives each training job (``threads``)
    threads: int | None = None
    #: the machine the plan was made on: CPU model and logical CPUs
    machine: str = ""

    @property
    def total_hours(self) -> float:
        return sum(j.hours for j in self.jobs)

    @property
    def calibrated(self) -> bool:
        return all(j.rate.calibrated for j in self.jobs)


def make_plan(config: dict[str, Any], device: str, amp: str | None = None,
              compile_mode: str | None = None, algorithms: list[str] | None = None,
              calibration: str | Path | None = None,
              prepared_root: Path | None = None) -> Plan:
    """Plan every training job of a validated config (``algorithms`` narrows the grid)."""
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the counting runs tiny ops: more threads only wait for each other
    try:
        return _make_plan(config, device, amp, compile_mode, algorithms, calibration,
                          prepared_root, started)
    finally:
        torch.set_num_threads(threads)


def _make_plan(config: dict[str, Any], device: str, amp: str | None, compile_mode: str | None,
               algorithms: list[str] | None, calibration: str | Path | None,
               prepared_root: Path | None, started: float) -> Plan:
    from semibench.config import run_config, run_grid

    config = copy.deepcopy(config)
    if algorithms:
        config["algorithms"] = list(algorithms)
        for settings in config["tasks"].values():
            settings.pop("algorithms", None)
    check_device(device, "none" if device == "cpu" else (amp or "none"), compile_mode or "none")
    rows = read_calibration(calibration)
    jobs = [plan_job(run_config(config, *job), device, amp, compile_mode, rows, prepared_root)
            for job in run_grid(config)]
    return Plan(device, "none" if device == "cpu" else (amp or "per config"),
                "none" if device == "cpu" else (compile_mode or "per config"), jobs,
                time.perf_counter() - started, threads=config.get("threads"),
                machine=f"{cpu_model()}, {os.cpu_count() or '?'} logical CPUs")
