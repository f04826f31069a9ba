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
    #: bytes of one weight file (model_best.pt or model_last.pt): parameters and buffers x 4
    weight_bytes: float = 0.0
    #: ``train.keep_weights`` and how many weight files a finished run keeps
    keep_weights: str = "best"
    kept_files: int = 1
    #: bytes of one checkpoint generation (the model, its EMA copy, the optimiser's moments)
    checkpoint_bytes: float = 0.0

    @property
    def total_flops(self) -> float:
        return self.step_flops * self.iterations + self.eval_flops

    @property
    def kept_bytes(self) -> float:
        """The weights the finished run keeps."""
        return self.weight_bytes * self.kept_files

    @property
    def training_bytes(self) -> float:
        """The most the run directory holds while the job trains, besides its small files:
        two checkpoint generations and one being written, and model_best.pt where kept."""
        best = self.weight_bytes if self.keep_weights in ("best", "both") else 0.0
        return CHECKPOINTS_AT_ONCE * self.checkpoint_bytes + best


#: checkpoint generations on disk at once while a job trains: the current and the previous
#: one (semibench.train.checkpoint) and the one being written
CHECKPOINTS_AT_ONCE = 3
#: bytes per stored value: weights, EMA and optimiser moments are float32 (amp autocasts the
#: computation, not the stored weights)
BYTES_PER_VALUE = 4


def weight_values(model: torch.nn.Module, num_classes: int) -> tuple[int, int]:
    """Values in the model's state dict (parameters and buffers: what a weight file holds)
    with a ``num_classes`` classifier, and how many of them are trainable parameters (what
    the optimiser keeps moments of). The planner builds its models with two classes: every
    linear layer with two outputs is counted at ``num_classes``."""
    extra = sum((num_classes - 2) * (m.in_features + (m.bias is not None))
                for m in model.modules()
                if isinstance(m, torch.nn.Linear) and m.out_features == 2)
    state = sum(t.numel() for t in model.state_dict().values()) + extra
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) + extra
    return state, trainable


def disk_bytes(model: torch.nn.Module, num_classes: int, cfg: Any) -> tuple[float, float]:
    """Bytes of one weight file and of one checkpoint generation of a run of ``cfg``
    (a TrainConfig): the model, its EMA copy where ``ema_m`` > 0, and the optimiser's moments
    (SGD with momentum: one per parameter; AdamW: two). An algorithm's own state (memory
    banks, queues) is not counted."""
    values, params = weight_values(model, num_classes)
    moments = 2 if cfg.optimizer == "adamw" else (1 if cfg.momentum > 0 else 0)
    weights = float(values * BYTES_PER_VALUE)
    checkpoint = weights * (2 if cfg.ema_m > 0 else 1) + moments * params * BYTES_PER_VALUE
    return weights, checkpoint


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
    weights, checkpoint = disk_bytes(model, task.num_classes, cfg)
    return JobPlan(run["task"], num_lb, label, run["seed"], name,
                   backbone_family(name), cfg.iterations, step, eval_flops, seconds / 3600,
                   rate, notes, weight_bytes=weights, keep_weights=cfg.keep_weights,
                   kept_files=len(cfg.kept), checkpoint_bytes=checkpoint)


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
    def kept_bytes(self) -> float:
        """The weights the finished sweep keeps (``train.keep_weights``)."""
        return sum(j.kept_bytes for j in self.jobs)

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
