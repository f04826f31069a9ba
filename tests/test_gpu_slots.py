"""GPU slots: concurrent jobs spread over the GPUs, several share one (packing), a killed job
frees its slot, and asking for more slots than exist is one line, not a hang."""

from __future__ import annotations

import subprocess
import sys

import pytest

from semibench.train.gpu_slots import NoFreeSlotError, acquire


def test_jobs_spread_over_gpus_then_pack(tmp_path):
    gpus = ["GPU-a", "GPU-b"]
    held = [acquire(gpus, 2, tmp_path) for _ in range(4)]
    assert [(s.index, s.slot) for s in held] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    with pytest.raises(NoFreeSlotError, match=r"all 2 x 2 GPU slots are taken.*gpu=<at most 4>"):
        acquire(gpus, 2, tmp_path)
    held[1].release()
    again = acquire(gpus, 2, tmp_path)
    assert (again.index, again.slot) == (1, 0)


def test_slot_of_a_dead_process_is_free(tmp_path):
    code = ("import os, sys; from pathlib import Path; from semibench.train.gpu_slots import "
            "acquire; acquire(['GPU-a'], 1, Path(sys.argv[1])); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    assert acquire(["GPU-a"], 1, tmp_path).slot == 0  # the OS dropped the dead job's lock


def test_slots_are_keyed_by_gpu_not_by_index(tmp_path):
    """Two SLURM jobs on one node each see their own GPU as cuda:0: different UUIDs, no clash."""
    first = acquire(["GPU-a"], 1, tmp_path)
    second = acquire(["GPU-b"], 1, tmp_path)
    assert first.index == second.index == 0 and first.gpu != second.gpu


def test_no_gpu(tmp_path):
    with pytest.raises(NoFreeSlotError, match="no GPU is visible"):
        acquire([], 1, tmp_path)
