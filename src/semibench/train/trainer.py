"""The trainer: one run's training loop (USB's protocol): iterations, cosine schedule with
warm-up, optional EMA, evaluation every ``eval_every`` iterations on validation and test, model selection on
validation only, checkpoint + exact resume, ``metrics.json`` and ``curve.csv``.

    for it in range(start, iterations):
        batch   = sample labelled (and unlabelled) indices; apply the views the algorithm asks for
        outputs = algorithm.forward(model, views)          # one shared forward pass
        loss    = algorithm.compute_loss(outputs, batch)   # the algorithm's own maths
        backward, clip, step, schedule, EMA
        every eval_every: evaluate, keep the best-on-validation, checkpoint
        on SIGTERM: checkpoint at this step boundary and exit non-zero (the retry resumes here)

The job around it (lock, GPU slot, signals) is :mod:`semibench.train.run`; the run's data
and what a method may use of it, :mod:`semibench.train.access`.

A run resumes only an interrupted run of the same inputs: the resolved settings, the prepared
data's and the split's SHA-256 and the SemiBench code (:func:`run_inputs`). A finished run
removes its checkpoints, so a rerun (``--forcerun``, changed data) always trains afresh.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import semibench.compose as compose
from semibench.algorithms import Algorithm, Batch
from semibench.algorithms.base import DataInfo, base_view
from semibench.augment import build_views
from semibench.backbones import create_backbone
from semibench.errors import TrainingStopped
from semibench.io import atomic_write_text
from semibench.metrics_file import input_format, write_metrics
from semibench.spec import RunSpec
from semibench.splits import read_split
from semibench.tasks import load_prepared, verify_prepared
from semibench.train.access import TrainingData
from semibench.train.checkpoint import CheckpointStore, save_checkpoint
from semibench.train.device import (
    has_batch_norm,
    memory_format,
    pick_device,
    precision_dtype,
)
from semibench.train.ema import ModelEMA
from semibench.train.evaluate import (
    EvalResult,
    class_groups,
    evaluate,
    group_fields,
    record_fields,
)
from semibench.train.history import note
from semibench.train.logs import FiniteGuard, LogSums
from semibench.train.optim import make_optimizer, make_scheduler
from semibench.train.prefetch import Prefetcher
from semibench.train.provenance import inputs_differ, package_versions, run_inputs
from semibench.train.sampling import BatchSampler, step_generator

CURVE_COLUMNS = [
    "iteration", "lr", "loss", "sup_loss", "unsup_loss", "mask_ratio", "pseudo_label_acc",
    "val_error", "test_error", "elapsed_s",
]  # fmt: skip
STREAM_LB, STREAM_ULB, STREAM_VIEWS, STREAM_TORCH, STREAM_GENERATION = 1, 2, 3, 4, 5
#: on CUDA, look at the losses' finiteness every this many steps (one sync), and at every
#: evaluation and checkpoint; on the CPU after every step (it costs nothing there)
CHECK_EVERY = 50




@dataclass
class StopRequest:
    """Set by the SIGTERM handler; the loop checkpoints and stops at the next step boundary."""

    signal: int | None = None


class Trainer:
    """Trains one run. ``run`` is its :class:`RunSpec` (a settings dict is parsed into one, for
    callers that hold the wire format); ``stop`` is the job's stop request (SIGTERM), checked
    at every step boundary."""

    def __init__(self, run: RunSpec | dict[str, Any], prepared_dir: Path, split_path: Path,
                 out_dir: Path, backtranslations: Path | None = None,
                 stop: StopRequest | None = None):
        self.spec = RunSpec.coerce(run)
        #: the settings as they travel and are recorded (checkpoint inputs, metrics.json)
        self.settings = self.spec.to_settings()
        self.composition = self.spec.composition
        self.out_dir = Path(out_dir)
        self.seed = self.spec.seed
        self.cfg = self.spec.train
        self.stop = stop if stop is not None else StopRequest()
        # each step below draws from torch's global generator in this order: the order of
        # the random draws (and so every number of a run) depends on it
        self._setup_device()
        torch.manual_seed(self.seed)
        self.inputs = run_inputs(self.settings, verify_prepared(prepared_dir), Path(split_path),
                                 backtranslations)
        prepared, x_train, y_train = self._setup_model_and_inputs(prepared_dir, backtranslations)
        split = read_split(split_path)
        lb, ulb = self._setup_split(split, split_path, prepared, x_train, y_train)
        lb = self._setup_algorithm(lb, ulb, y_train)
        #: the run's data: stored inputs, pools, views; what a method may use of it (the
        #: TrainingPort), and all the trainer reads its pools from
        self.data = TrainingData(
            x_train=x_train, y_train=y_train, labelled=lb, unlabelled=ulb,
            views=self.views, device=self.device, seed=self.seed,
            num_classes=self.num_classes, eval_batch_size=self.cfg.eval_batch_size)
        self.data.on_labelled = self._attach
        self._setup_generations()
        self._build_training()
        self._attach()
        #: head / medium / tail classes of a long-tailed split (semibench.splits_lt)
        self.class_groups = (class_groups(torch.bincount(
            self.y_train[lb], minlength=self.num_classes).tolist())
            if split.long_tailed is not None else None)
        self._setup_progress()
        self._place_pools()
        self.compiled = self._compile()
        self._maybe_resume()

    # ------------------------------------------------------------------ set-up steps
    def _setup_device(self) -> None:
        """Device, autocast dtype and gradient scaler."""
        self.device = pick_device(self.cfg.device)
        #: what this run really does where it differs from the settings, and why (logged and
        #: written to metrics.json; never a silent fallback)
        self.fallbacks: list[str] = []
        self.autocast_dtype = precision_dtype(self.cfg.amp, self.device)
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.autocast_dtype is torch.float16)

    def _setup_model_and_inputs(self, prepared_dir: Path, backtranslations: Path | None
                                ) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """The prepared data, the first model (its weights: the first draws after the seed),
        its views, and the test set in the model's own form; returns the prepared data and the
        stored training inputs and labels."""
        data = load_prepared(prepared_dir)
        if backtranslations is not None:  # train_x becomes [N, 3]: original + 2 translations
            from semibench.backtranslate import attach_backtranslations

            data = attach_backtranslations(data, backtranslations)
        #: what the strong text view is, recorded in metrics.json (USB: back-translation)
        self.text_strong_view = None
        if data.meta["domain"] == "text":
            self.text_strong_view = ("back-translation" if data.train_x.ndim == 2
                                     else "token-edit stand-in")
        self.num_classes = data.meta["num_classes"]
        self.meta = data.meta
        self.input_format = input_format(data.meta["domain"], data.test_x, data.meta)
        self.model = self._new_model()
        self.memory_format = memory_format(self.cfg.memory_format, self.model)
        self.model.to(memory_format=self.memory_format)
        #: one joint pass over all views only where it changes the result (batch norm)
        self.joint_pass = self.cfg.use_cat and has_batch_norm(self.model)
        self.views = build_views(data.meta["domain"],
                                 {**self.spec.augment, **self.model.view_spec()})
        x_train = self.model.prepare_inputs(data.train_x)
        y_train = torch.as_tensor(data.train_y)
        self.x_test = self.model.prepare_inputs(data.test_x)
        self.y_test = torch.as_tensor(data.test_y)
        return data, x_train, y_train

    def _setup_split(self, split: Any, split_path: Path, data: Any, x_train: torch.Tensor,
                     y_train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The validation set (the split's or the source's own) and the split's labelled and
        unlabelled stored-input indices."""
        if split.validation_source == "prepared":  # the source's own dev set
            if data.val_x is None:
                raise ValueError(f"{split_path}: validation_source=prepared but the prepared "
                                 "data has no val_x/val_y")
            self.x_val = self.model.prepare_inputs(data.val_x)
            self.y_val = torch.as_tensor(data.val_y)
        else:
            val_idx = torch.tensor(split.validation, dtype=torch.long)
            self.x_val, self.y_val = x_train[val_idx], y_train[val_idx]
        ulb = torch.tensor(split.unlabelled, dtype=torch.long)
        lb = torch.tensor(split.labelled, dtype=torch.long)
        return lb, ulb

    def _setup_algorithm(self, lb: torch.Tensor, ulb: torch.Tensor,
                         y_train: torch.Tensor) -> torch.Tensor:
        """The run's algorithm (through the composition root) and the labelled set it trains
        on (every labelled sample of the pool for the fully supervised bound)."""
        spec = self.spec
        self.algorithm: Algorithm = compose.create_algorithm(
            spec.composition, dict(spec.algorithm_params),
            dict(spec.imbalance_params) if spec.imbalance_params is not None else None,
            domain=self.meta["domain"],
            num_classes=self.num_classes,
            num_iterations=self.cfg.iterations,
            num_ulb=len(ulb),
        )
        if self.algorithm.uses_all_labels:  # every sample of the pool that has a label
            pool = torch.unique(torch.cat([lb, ulb]))
            lb = pool[y_train[pool] >= 0]
        # positions inside the unlabelled pool are the algorithm's per-sample indices
        self.ulb_sampler = BatchSampler(torch.arange(len(ulb)),
                                        self.cfg.batch_size * self.cfg.uratio, self.seed,
                                        STREAM_ULB)
        return lb

    def _setup_generations(self) -> None:
        """CReST's generations (each trains a fresh model for ``generation_length``
        iterations) and the milestones between steps."""
        self.generations = max(1, int(self.algorithm.generations))
        if self.cfg.iterations % self.generations:
            raise ValueError(f"train.iterations={self.cfg.iterations} is not a multiple of "
                             f"{self.composition.label}'s {self.generations} generations")
        self.generation_length = self.cfg.iterations // self.generations
        self.milestones = sorted(
            {i for i in self.algorithm.milestones() if 0 < i < self.cfg.iterations}
            | {g * self.generation_length for g in range(1, self.generations)})

    def _setup_progress(self) -> None:
        """The state a checkpoint restores: position, curve, best and last evaluations, logs."""
        self.start_iteration = 0
        self.curve: list[dict[str, float]] = []
        self.best: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None
        self.elapsed_before = 0.0
        #: the step logs since the last evaluation, on the device (checkpointed on SIGTERM)
        self.logs = LogSums()
        self.guard = FiniteGuard()
        #: look at the loss after every step (free on the CPU); on CUDA every CHECK_EVERY steps
        self.check_each_step = self.device.type != "cuda"
        self.checkpoints = CheckpointStore(self.out_dir)

    # ------------------------------------------------------------------ the run's data
    @property
    def x_train(self) -> torch.Tensor:
        return self.data.x_train

    @property
    def y_train(self) -> torch.Tensor:
        return self.data.y_train

    @property
    def lb_pool(self) -> torch.Tensor:
        """The labelled set now (stored-input indices, CPU)."""
        return self.data.lb_pool

    @property
    def lb_y(self) -> torch.Tensor:
        return self.data.lb_y

    @property
    def ulb_pool(self) -> torch.Tensor:
        return self.data.ulb_pool

    # ------------------------------------------------------------------ set-up
    def _new_model(self) -> torch.nn.Module:
        """A fresh backbone on the device (its weights drawn from torch's global seed)."""
        return create_backbone(self.spec.backbone, self.num_classes,
                               **dict(self.spec.backbone_args)).to(self.device)

    def _build_training(self) -> None:
        """The algorithm's heads on ``self.model``, the optimiser, the schedule (one
        generation long) and the EMA."""
        heads = self.algorithm.build_modules(self.model.num_features)
        if heads:
            self.model.ssl_heads = torch.nn.ModuleDict(heads).to(self.device)
            self.model.to(memory_format=self.memory_format)
        self.optimizer = make_optimizer(self.model, self.cfg)
        self.scheduler = make_scheduler(
            self.optimizer, dataclasses.replace(self.cfg, iterations=self.generation_length))
        self.ema = (ModelEMA(self.model, self.cfg.ema_m, self.cfg.ema_warmup)
                    if self.cfg.ema_m > 0 else None)

    def _attach(self) -> None:
        """(Re)attach the algorithm to the models and the labelled set as they are now (and
        tell the run data which models are current)."""
        self.data.model = self.model
        self.data.teacher_model = self.ema.model if self.ema is not None else None
        self.lb_sampler = BatchSampler(torch.arange(len(self.lb_pool)), self.cfg.batch_size,
                                       self.seed, STREAM_LB)
        self.algorithm.attach(self.model, self.ema.model if self.ema else None, DataInfo(
            domain=self.meta["domain"], num_classes=self.num_classes, num_lb=len(self.lb_pool),
            num_ulb=len(self.ulb_pool),
            lb_class_counts=torch.bincount(self.lb_y.cpu(), minlength=self.num_classes),
            data=self.data))

    def _new_generation(self, generation: int) -> None:
        """A fresh model (initialised from (seed, generation)), optimiser, schedule and EMA;
        the algorithm keeps its own state, as USB's CReST keeps its hooks'."""
        torch.manual_seed(step_generator(self.seed, STREAM_GENERATION, generation).initial_seed())
        self.model = self._new_model()
        self.model.to(memory_format=self.memory_format)
        self._build_training()
        self.compiled = self._compile()
        self._attach()

    def _milestone(self, iteration: int) -> None:
        """The algorithm's whole-data work before step ``iteration``; a new generation starts
        after it (CReST labels with the finished generation's model)."""
        self.algorithm.on_milestone(iteration, self.data)
        if iteration % self.generation_length == 0:
            self._new_generation(iteration // self.generation_length)
            note(self.out_dir, f"generation {iteration // self.generation_length + 1} of "
                 f"{self.generations} starts at iteration {iteration} with "
                 f"{len(self.lb_pool)} labelled samples")

    # ------------------------------------------------------------------ speed
    def _place_pools(self) -> None:
        """On CUDA, the stored inputs go to the device when they take under a quarter of its
        free memory (views then run there, with no copy per step), else to pinned host memory
        (asynchronous copies). On the CPU nothing moves."""
        if self.device.type != "cuda":
            return
        free, _ = torch.cuda.mem_get_info(self.device)
        line = self.data.place(self.device, lambda size: size < free / 4)
        if line is not None:
            self.fallbacks.append(line)

    def _fallback(self, line: str) -> None:
        if line not in self.fallbacks:  # a new generation meets the same ones again
            self.fallbacks.append(line)

    def _compile(self) -> str:
        """Apply ``train.compile`` to the model's forward; return the mode really used."""
        mode = self.cfg.compile
        if mode == "none":
            return "none"
        reason = self.model.compile_obstacle()
        if reason:
            self._fallback(f"train.compile={mode} not applied: {reason}")
            return "none"
        if mode == "reduce-overhead" and self.device.type != "cuda":
            self._fallback("train.compile=reduce-overhead uses CUDA graphs; on "
                           f"{self.device.type} it compiles as mode=default")
            mode = "default"
        for name in ("forward_features", "forward_head"):
            setattr(self.model, name, torch.compile(getattr(self.model, name), mode=mode))
        return mode

    # ------------------------------------------------------------------ checkpoint
    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoints.current

    def _state(self, next_iteration: int, elapsed: float) -> dict[str, Any]:
        return {
            "config": self.settings,
            "inputs": self.inputs,
            "pending": self.logs.state_dict(),
            "scaler": self.scaler.state_dict(),
            "next_iteration": next_iteration,
            "model": self.model.state_dict(),
            "ema": self.ema.model.state_dict() if self.ema else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "algorithm": self.algorithm.state_dict(),
            "labelled": {"index": self.lb_pool.cpu(), "labels": self.lb_y.cpu()},
            "curve": self.curve,
            "best": self.best,
            "last": self.last,
            #: how many samples chose ``best``: with a few per class, selection is noisy
            "val_size": len(self.y_val),
            "elapsed_s": elapsed,
        }

    def _start_afresh(self, why: str | None) -> None:
        """Drop the checkpoints and the weights of a finished or abandoned run (``why`` is
        logged when there was something to resume)."""
        if why:
            note(self.out_dir, f"{why}; starting afresh")
        self.checkpoints.clear()
        for name in ("model_best.pt", "model_last.pt"):
            (self.out_dir / name).unlink(missing_ok=True)

    def _maybe_resume(self) -> None:
        loaded = self.checkpoints.load(lambda line: note(self.out_dir, line))
        if loaded is None:
            self._start_afresh("no usable checkpoint" if any(self.out_dir.glob("checkpoint*"))
                               else None)
            return
        state = loaded.state
        why = inputs_differ(state.get("inputs"), self.inputs)
        if why:
            self._start_afresh(f"{loaded.path.name} is not resumable: {why}")
            return
        self.start_iteration = state["next_iteration"]
        # every generation's model has the same layout: the state loads into this one
        labelled = state.get("labelled")
        if labelled is not None:
            self.data.restore_labelled(labelled["index"], labelled["labels"])
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            self.ema.model.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.algorithm.load_state_dict(state["algorithm"])
        self.curve, self.best, self.last = state["curve"], state["best"], state["last"]
        self.logs.load_state_dict(state["pending"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.elapsed_before = state["elapsed_s"]
        note(self.out_dir, f"resumed from iteration {self.start_iteration} ({loaded.path.name}: "
             "same settings, data, split and code)")

    # ------------------------------------------------------------------ one step
    def make_batch(self, step: int) -> Batch:
        """Step ``step``'s samples and views, on the training device. A function of (seed,
        step) only: the prefetch thread may build it while the previous step runs."""
        gen = step_generator(self.seed, STREAM_VIEWS, step)
        lb_pos = self.lb_sampler.batch(step)
        lb = self._on_pool(self.lb_pool[lb_pos])
        x_lb = {v: self.views[base_view(v)](self.x_train[lb], gen) for v in self.algorithm.lb_views}
        batch = Batch(x_lb=x_lb, y_lb=self.lb_y[self._on_pool(lb_pos)], idx_lb=lb_pos)
        if self.algorithm.ulb_views:
            pos = self.ulb_sampler.batch(step)
            ulb = self._on_pool(self.ulb_pool[pos])
            batch.x_ulb = {v: self.views[base_view(v)](self.x_train[ulb], gen)
                           for v in self.algorithm.ulb_views}
            batch.idx_ulb, batch.y_ulb = pos, self.y_train[ulb]
        return self._to_device(batch)

    def _on_pool(self, index: torch.Tensor) -> torch.Tensor:
        return index.to(self.x_train.device, non_blocking=True)

    def _to_device(self, batch: Batch) -> Batch:
        def move(t: torch.Tensor) -> torch.Tensor:
            if t.device == self.device:
                return t
            if self.device.type == "cuda" and not t.is_pinned():
                t = t.pin_memory()  # an asynchronous copy needs page-locked memory
            return t.to(self.device, non_blocking=True)

        batch.x_lb = {k: move(v) for k, v in batch.x_lb.items()}
        batch.x_ulb = {k: move(v) for k, v in batch.x_ulb.items()}
        batch.y_lb = move(batch.y_lb)
        for name in ("idx_lb", "idx_ulb", "y_ulb"):
            value = getattr(batch, name)
            if value is not None:
                setattr(batch, name, move(value))
        return batch

    def train_step(self, step: int, batch: Batch | None = None,
                   phase: Callable[[str], None] | None = None) -> None:
        """One optimiser step; its logs go to ``self.logs`` without waiting for the device.
        ``phase`` (the speed benchmark's timer) is called after "forward", "backward" and
        "optimizer"."""
        mark = phase or (lambda name: None)
        torch.manual_seed(step_generator(self.seed, STREAM_TORCH, step).initial_seed())
        if batch is None:
            batch = self.make_batch(step)
        inputs = {f"lb_{v}": x for v, x in batch.x_lb.items()}
        inputs.update({f"ulb_{v}": x for v, x in batch.x_ulb.items()})
        self.model.train()
        with torch.autocast(self.device.type, dtype=self.autocast_dtype,
                            enabled=self.autocast_dtype is not None):
            out = self.algorithm.forward(self.model, inputs, self.joint_pass)
            result = self.algorithm.compute_loss(out, batch, step)
        mark("forward")
        loss = result.loss
        self.guard.observe(loss, step)
        if self.check_each_step:
            self.guard.check()  # free on the CPU: stop before the step, as before
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        mark("backward")
        if self.cfg.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model, step % self.generation_length)
        mark("optimizer")
        self.logs.add("loss", loss)
        for key, value in result.log.items():
            self.logs.add(key, value)
        if result.mask is not None and batch.y_ulb is not None:
            mask = result.mask.detach().float()
            self.logs.add("mask_ratio", mask.mean())
            known = (batch.y_ulb >= 0).float()  # unlabelled-only sources have no true label
            weight = mask * known
            if result.pseudo_label is not None:
                correct = (result.pseudo_label == batch.y_ulb).float()
                total = weight.sum()
                self.logs.add("pseudo_label_acc", (weight * correct).sum() / total.clamp_min(1e-12),
                              weight=(total > 0).double())

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, x: torch.Tensor, y: torch.Tensor) -> EvalResult:
        model = self.ema.model if self.ema is not None else self.model
        model = self.algorithm.predictor(model)  # e.g. ABC's class-balanced head
        return evaluate(model, x, y, self.views["eval"], num_classes=self.num_classes,
                        batch_size=self.cfg.eval_batch_size, device=self.device,
                        autocast_dtype=self.autocast_dtype)

    def _eval_record(self, iteration: int) -> dict[str, Any]:
        val, test = self._evaluate(self.x_val, self.y_val), self._evaluate(self.x_test, self.y_test)
        groups = group_fields(test, self.class_groups) if self.class_groups else {}
        return {"iteration": iteration, "val_error": val.error, **record_fields(test), **groups}

    # ------------------------------------------------------------------ the run
    def _stop(self, iteration: int) -> TrainingStopped:
        return TrainingStopped(
            f"stopped by signal {self.stop.signal} after iteration {iteration} of "
            f"{self.cfg.iterations}; checkpoint written, a rerun resumes there")

    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        started = time.perf_counter()
        bar = tqdm(range(self.start_iteration, cfg.iterations), initial=self.start_iteration,
                   total=cfg.iterations, desc=f"{self.spec.task}/{self.spec.label}",
                   file=sys.stderr, mininterval=5.0)
        prefetch = Prefetcher(self.make_batch, enabled=cfg.prefetch, device=self.device)
        try:
            for step in bar:
                if step in self.milestones:
                    self._milestone(step)
                following = step + 1 if step + 1 < cfg.iterations else None
                if following in self.milestones:  # its batch may come from another set
                    following = None
                self.train_step(step, prefetch.get(step, following))
                iteration = step + 1
                evaluation = iteration % cfg.eval_every == 0 or iteration == cfg.iterations
                if iteration % CHECK_EVERY == 0:
                    self.guard.check()
                if self.stop.signal is not None and not evaluation:
                    self.guard.check()  # never checkpoint a diverged model
                    elapsed = self.elapsed_before + time.perf_counter() - started
                    self.checkpoints.save(self._state(iteration, elapsed))
                    raise self._stop(iteration)
                if evaluation:
                    self._evaluation(iteration, self.elapsed_before + time.perf_counter() - started)
                    bar.set_postfix(val=f"{self.last['val_error']:.1f}",
                                    test=f"{self.last['test_error']:.1f}")
                    if self.stop.signal is not None and iteration < cfg.iterations:
                        raise self._stop(iteration)
        finally:
            prefetch.close()
            bar.close()
        wall = self.elapsed_before + time.perf_counter() - started
        return self._metrics(wall)

    def finish(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Final weights (where ``train.keep_weights`` keeps them), curve, then metrics.json (its presence means "complete"); then the
        checkpoints go, so that a finished run is never resumed. Returns the metrics as
        written (validated, NaN as null)."""
        model = self.ema.model if self.ema is not None else self.model
        if "last" in self.cfg.kept:  # train.keep_weights: weights not kept are never written
            save_checkpoint(self.out_dir / "model_last.pt", model.state_dict())
        write_curve(self.out_dir / "curve.csv", self.curve)
        metrics.update(write_metrics(self.out_dir / "metrics.json", metrics))
        self.checkpoints.clear()
        return metrics

    def _evaluation(self, iteration: int, elapsed: float) -> None:
        """Check the losses, evaluate, add a curve row, keep the best, checkpoint."""
        self.guard.check()
        record = self.last = self._eval_record(iteration)
        row: dict[str, Any] = self.logs.means()
        self.logs.clear()
        row.update(iteration=iteration, lr=self.scheduler.get_last_lr()[-1],
                   val_error=record["val_error"], test_error=record["test_error"],
                   elapsed_s=elapsed)
        self.curve.append(row)
        if self.best is None or record["val_error"] < self.best["val_error"]:
            self.best = record
            if "best" in self.cfg.kept:  # train.keep_weights
                model = self.ema.model if self.ema is not None else self.model
                save_checkpoint(self.out_dir / "model_best.pt", model.state_dict())
        self.checkpoints.save(self._state(iteration, elapsed))

    def _metrics(self, wall: float) -> dict[str, Any]:
        device = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return {
            "task": self.spec.task,
            "domain": self.meta["domain"],
            "num_labels": self.spec.num_labels,
            "algorithm": self.spec.label,  # with a swept run's point (config.sweep has it)
            "imbalance": self.composition.imbalance,
            "seed": self.seed,
            "num_classes": self.num_classes,
            "classes": self.meta["classes"],
            "input_format": self.input_format,
            "best": self.best,
            "last": self.last,
            #: how many samples chose ``best``: with a few per class, selection is noisy
            "val_size": len(self.y_val),
            "wall_time_s": wall,
            "device": device,
            "threads": torch.get_num_threads(),
            "text_strong_view": self.text_strong_view,
            "precision": {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(
                self.autocast_dtype, "fp32"),
            "compile": self.compiled,
            "memory_format": str(self.memory_format).removeprefix("torch."),
            "joint_pass": self.joint_pass,
            "fallbacks": self.fallbacks,
            "versions": package_versions(),
            "inputs": {k: v for k, v in self.inputs.items() if k != "settings"},
            "config": self.settings,
            #: the weights kept (train.keep_weights): the settings name it only when it is
            #: not the default, this always
            "keep_weights": self.cfg.keep_weights,
            **({"class_groups": self.class_groups} if self.class_groups else {}),
        }


def write_curve(path: Path, rows: list[dict[str, float]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CURVE_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None or (isinstance(row.get(k), float)
                                                          and math.isnan(row[k])) else row[k])
                         for k in CURVE_COLUMNS})
    atomic_write_text(path, buffer.getvalue())
