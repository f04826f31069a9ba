"""``train.scheduler``: USB's cosine schedule (the default) or a constant learning rate (USB's
imbalanced runs of non-ViT networks: ``ImbAlgorithmBase.set_optimizer`` returns no scheduler),
both after an optional linear warm-up; the learning rate after k steps, checkpoint/resume and
the error for an unknown name."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from torch import nn

from semibench.config import check_config, run_config
from semibench.train.config import TrainConfig
from semibench.train.loop import train_run
from semibench.train.optim import make_scheduler
from tests.helpers.runs import interrupted_run, train

LR = 0.5


def lrs_after(cfg: TrainConfig, steps: int) -> list[float]:
    """The learning rate of a one-parameter SGD after 0, 1, ..., ``steps`` optimiser steps."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=LR)
    sched = make_scheduler(opt, cfg)
    out = [opt.param_groups[0]["lr"]]
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def test_default_is_cosine():
    assert TrainConfig().scheduler == "cosine"


def test_cosine_after_k_steps():
    """lr0 * cos(7 pi / 16 * k / K); K = 8: k = 8 gives cos(7 pi / 16) = 0.195 lr0."""
    got = lrs_after(TrainConfig(scheduler="cosine", iterations=8), 8)
    assert got == pytest.approx([LR * math.cos(7 * math.pi / 16 * k / 8) for k in range(9)])
    assert got[-1] == pytest.approx(0.19509 * LR, rel=1e-4)


def test_constant_after_k_steps():
    assert lrs_after(TrainConfig(scheduler="constant", iterations=8), 8) == [LR] * 9


def test_warm_up_applies_to_both_schedules():
    """Linear warm-up k / w * lr0 for k < w, then each schedule over the remaining steps."""
    w, total = 4, 12
    constant = lrs_after(TrainConfig(scheduler="constant", iterations=total,
                                     warmup_iterations=w), total)
    assert constant == pytest.approx([LR * k / w for k in range(w)] + [LR] * (total - w + 1))
    cosine = lrs_after(TrainConfig(scheduler="cosine", iterations=total,
                                   warmup_iterations=w), total)
    expected = [LR * k / w for k in range(w)] + [
        LR * math.cos(7 * math.pi / 16 * (k - w) / (total - w)) for k in range(w, total + 1)]
    assert cosine == pytest.approx(expected)


def test_constant_keeps_layer_decay_scales():
    a, b = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [a], "lr": 1.0}, {"params": [b], "lr": 0.25}], lr=1.0)
    sched = make_scheduler(opt, TrainConfig(scheduler="constant", warmup_iterations=2))
    for _ in range(3):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == [1.0, 0.25]


@pytest.mark.parametrize("name", ["constant", "cosine"])
def test_scheduler_state_restores(name):
    """A scheduler rebuilt from a checkpoint's state continues the same learning rates."""
    cfg = TrainConfig(scheduler=name, iterations=10, warmup_iterations=3)
    reference = lrs_after(cfg, 10)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=LR)
    sched = make_scheduler(opt, cfg)
    for _ in range(5):
        opt.step()
        sched.step()
    state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    opt2 = torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=LR)
    sched2 = make_scheduler(opt2, cfg)
    opt2.load_state_dict(state["optimizer"])
    sched2.load_state_dict(state["scheduler"])
    resumed = [opt2.param_groups[0]["lr"]]
    for _ in range(5):
        opt2.step()
        sched2.step()
        resumed.append(opt2.param_groups[0]["lr"])
    assert resumed == pytest.approx(reference[5:])


def test_unknown_scheduler_is_one_line():
    with pytest.raises(ValueError) as err:
        TrainConfig.from_dict({"scheduler": "step"})
    message = str(err.value)
    assert message == "train.scheduler='step'; allowed: constant, cosine"
    assert "\n" not in message


# ---------------------------------------------------------------------- in the trainer

TRAIN = train(lr=0.02)


def constant_run(algorithm: str = "fixmatch") -> dict:
    cfg = check_config({"algorithms": [algorithm], "seeds": [0],
                        "tasks": {"mnist": {"num_labels": [40], "train": TRAIN}}})
    run = run_config(cfg, "mnist", 40, algorithm, 0)
    # set after the config check: the schema's `train` lists the keys it accepts
    run["train"] = {**run["train"], "scheduler": "constant"}
    return run


def curve_lrs(path) -> list[float]:
    return [float(r["lr"]) for r in csv.DictReader(path.open())]


def test_constant_run_resumes_exactly(prepared_mnist, split_path, tmp_path, monkeypatch):
    run = constant_run()
    reference = train_run(run, prepared_mnist, split_path, tmp_path / "ref")
    assert reference["config"]["train"]["scheduler"] == "constant"  # the run's settings
    assert curve_lrs(tmp_path / "ref" / "curve.csv") == [0.02, 0.02]

    interrupted_run(monkeypatch, run, prepared_mnist, split_path, tmp_path / "resumed")
    resumed = train_run(run, prepared_mnist, split_path, tmp_path / "resumed")
    assert resumed["best"] == reference["best"] and resumed["last"] == reference["last"]
    assert curve_lrs(tmp_path / "resumed" / "curve.csv") == [0.02, 0.02]
