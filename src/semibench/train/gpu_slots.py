"""Which GPU a training job uses, so that concurrent jobs spread over the GPUs of a machine
and several small jobs can share one (job packing).

Snakemake schedules jobs against a ``gpu`` resource but does not say *which* GPU a job gets:
without this every job of ``--resources gpu=8`` would train on ``cuda:0``. Here each job takes
one of ``jobs_per_gpu`` slots of one visible GPU: a lock file per (GPU, slot), held with
``flock`` for the job's life, so a crashed or killed job frees its slot by itself. GPUs are
named by UUID, which is what two jobs on one node have in common even when SLURM shows each of
them its own GPU as ``cuda:0``. The least-loaded GPU is taken first.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from semibench.errors import SemiBenchError
from semibench.io import try_lock

LOCK_DIR_ENV = "SEMIBENCH_GPU_SLOTS_DIR"


class NoFreeSlotError(SemiBenchError, RuntimeError):
    """Every slot of every visible GPU is held by another job."""


@dataclass
class Slot:
    """A held slot: GPU ``index`` (in this process's numbering) and the open lock file."""

    index: int
    gpu: str
    slot: int
    handle: IO[str]

    def release(self) -> None:
        self.handle.close()


def default_lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV)
                or Path(tempfile.gettempdir()) / f"semibench-gpu-slots-{os.getuid()}")


def _held(path: Path) -> bool:
    if not path.exists():
        return False
    handle = try_lock(path)
    if handle is None:
        return True
    handle.close()
    return False


def acquire(gpus: list[str], jobs_per_gpu: int, lock_dir: Path | None = None) -> Slot:
    """Hold a free slot of the least-loaded GPU among ``gpus`` (UUIDs, in device order)."""
    if not gpus:
        raise NoFreeSlotError("no GPU is visible to this job")
    if jobs_per_gpu < 1:
        raise ValueError(f"jobs_per_gpu={jobs_per_gpu}: must be >= 1")
    lock_dir = lock_dir or default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)

    def path(gpu: str, slot: int) -> Path:
        return lock_dir / f"{gpu}.slot{slot}.lock"

    load = {gpu: sum(_held(path(gpu, s)) for s in range(jobs_per_gpu)) for gpu in gpus}
    for index, gpu in sorted(enumerate(gpus), key=lambda item: (load[item[1]], item[0])):
        for slot in range(jobs_per_gpu):
            handle = try_lock(path(gpu, slot))
            if handle is not None:
                return Slot(index, gpu, slot, handle)
    raise NoFreeSlotError(
        f"all {len(gpus)} x {jobs_per_gpu} GPU slots are taken by other jobs: run Snakemake with "
        f"--resources gpu=<at most {len(gpus) * jobs_per_gpu}> or raise jobs_per_gpu")


def visible_gpus() -> list[str]:
    """UUIDs of the CUDA devices this process sees (empty without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    return [str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count())]
