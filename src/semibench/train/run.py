"""The job shell around one run's trainer: the run directory's lock, temporaries of killed
writes, a GPU slot (``jobs_per_gpu``), SIGTERM (a cluster's pre-emption or time limit) turned
into a checkpoint at the next step boundary, and the run's history lines."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import torch

from semibench.io import exclusive_directory, remove_temporaries
from semibench.plugins import load_plugins
from semibench.spec import RunSpec
from semibench.train import gpu_slots
from semibench.train.device import DeviceUnavailableError, pick_device
from semibench.train.history import note
from semibench.train.trainer import StopRequest, Trainer, TrainingStopped


def train_run(run: RunSpec | dict[str, Any], prepared_dir: Path, split_path: Path,
              out_dir: Path, backtranslations: Path | None = None, jobs_per_gpu: int = 1,
              early_signals: list[int] | None = None) -> dict:
    """Train one (task, num_labels, algorithm, seed) run; write curve.csv, then metrics.json.

    The run directory is locked for the job (a second live trainer fails at once), temporary
    files of killed writes are removed first, and SIGTERM (a cluster's pre-emption or time
    limit) checkpoints at the next step boundary and raises :class:`TrainingStopped`. On CUDA
    the job holds one of ``jobs_per_gpu`` slots of the least-loaded visible GPU for its life.
    """
    out_dir = Path(out_dir)
    spec = RunSpec.coerce(run)  # the wire format, parsed once
    load_plugins(list(spec.plugins or {}))  # the run's own algorithm, task or backbone
    slot = None
    if pick_device(spec.train.device).type == "cuda":
        try:
            slot = gpu_slots.acquire(gpu_slots.visible_gpus(), jobs_per_gpu)
        except gpu_slots.NoFreeSlotError as err:
            raise DeviceUnavailableError(str(err)) from None
        torch.cuda.set_device(slot.index)
    try:
        return _train_run(spec, prepared_dir, split_path, out_dir, backtranslations,
                          early_signals or [])
    except torch.cuda.OutOfMemoryError:
        raise DeviceUnavailableError(
            f"out of GPU memory on cuda:{slot.index if slot else '?'} with jobs_per_gpu="
            f"{jobs_per_gpu}: lower jobs_per_gpu (or the batch size)") from None
    finally:
        if slot is not None:
            slot.release()


def _train_run(spec: RunSpec, prepared_dir: Path, split_path: Path, out_dir: Path,
               backtranslations: Path | None, early_signals: list[int]) -> dict:
    stop = StopRequest()

    def request_stop(signum: int, _frame: Any) -> None:
        stop.signal = signum

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, request_stop) if in_main else None
    if early_signals:  # arrived before this handler existed (during start-up)
        stop.signal = early_signals[0]
    try:
        with exclusive_directory(out_dir):
            for path in remove_temporaries(out_dir):
                note(out_dir, f"removed {path.name}, left by a killed write")
            # a SIGTERM during start-up stops after the first step
            trainer = Trainer(spec, prepared_dir, split_path, out_dir, backtranslations, stop)
            try:
                metrics = trainer.fit()
            except TrainingStopped as err:
                note(out_dir, str(err))
                raise
            metrics = trainer.finish(metrics)
            note(out_dir, f"finished: {trainer.cfg.iterations} iterations")
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    return metrics
