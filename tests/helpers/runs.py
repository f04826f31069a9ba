"""Tiny training settings and the run settings of an MNIST run built from them."""

from __future__ import annotations

from typing import Any

import numpy as np

from semibench.config import check_config, run_config

#: six iterations, two evaluations, four labelled and eight unlabelled images a step
TRAIN: dict[str, Any] = {"iterations": 6, "eval_every": 3, "batch_size": 4, "uratio": 2,
                         "eval_batch_size": 512, "device": "cpu"}


def train(**changes: Any) -> dict[str, Any]:
    """``TRAIN`` with some settings changed."""
    return {**TRAIN, **changes}


def mnist_settings(algorithm: str = "fixmatch", *, num_labels: int = 40, **changes: Any) -> dict:
    """The resolved settings of one MNIST run (seed 0) trained with ``train(**changes)``."""
    cfg = check_config({"algorithms": [algorithm], "seeds": [0],
                        "tasks": {"mnist": {"num_labels": [num_labels],
                                            "train": train(**changes)}}})
    return run_config(cfg, "mnist", num_labels, algorithm, 0)


def states_equal(a: Any, b: Any) -> bool:
    """Nested state (dicts, lists, tensors, numbers) equal exactly, tensors by value."""
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and \
            a.shape == b.shape and bool(torch.equal(a.cpu(), b.cpu()))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and \
            all(states_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and \
            all(states_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def interrupt_at(monkeypatch, step: int) -> None:
    """Training raises KeyboardInterrupt (a simulated kill) when it reaches ``step``."""
    from semibench.train import loop

    original = loop.Trainer.train_step

    def killed(self, s, *args):
        if s == step:
            raise KeyboardInterrupt("simulated kill")
        return original(self, s, *args)

    monkeypatch.setattr(loop.Trainer, "train_step", killed)


def interrupted_run(monkeypatch, run, prepared, split, out, step: int = 4) -> None:
    """A run killed at ``step``: its checkpoint is on disk, its metrics.json is not."""
    import pytest

    from semibench.train.loop import train_run

    (out / "metrics.json").unlink(missing_ok=True)  # as Snakemake does before it reruns a job
    interrupt_at(monkeypatch, step)
    with pytest.raises(KeyboardInterrupt):
        train_run(run, prepared, split, out)
    monkeypatch.undo()
    assert (out / "checkpoint.pt").exists() and not (out / "metrics.json").exists()


def toy_labels(num_classes: int = 4, per_class: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.permutation(np.repeat(np.arange(num_classes), per_class))
