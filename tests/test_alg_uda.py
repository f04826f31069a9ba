"""UDA's loss (TSA, confidence mask, sharpened target) against values computed by hand."""

import math

import pytest
import torch

from semibench.algorithms import Batch, Outputs, create_algorithm, make_params
from semibench.algorithms.uda import tsa_threshold
from tests.alg_helpers import log_softmax, softmax

# labelled max p: 0.452 (kept by TSA at 0.667) and 0.844 (dropped)
LB = [[0.5, 0.0, 0.0], [0.0, 1.0, 3.0]]
Y = [0, 2]
WEAK = [[4.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 5.0], [1.5, 0.0, 0.0]]
STRONG = [[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.5, -1.0, 2.0], [0.3, 0.2, 0.1]]
C = 3


def make(**params):
    return create_algorithm("uda", params, num_classes=C, num_iterations=10, num_ulb=4)


def step(alg, it):
    out = Outputs(logits={"lb_weak": torch.tensor(LB), "ulb_weak": torch.tensor(WEAK),
                          "ulb_strong": torch.tensor(STRONG)}, feats={})
    return alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(Y), idx_ulb=torch.arange(4)),
                            it)


def hand(tsa, p_cutoff=0.8, lambda_u=1.0, sharpen=True, T=0.4):
    sup = 0.0
    for z, y in zip(LB, Y, strict=True):
        if max(softmax(z)) <= tsa:
            sup += -log_softmax(z)[y]
    sup /= len(LB)  # divided by the batch, not by the kept count
    unsup, mask = 0.0, []
    for zw, zs in zip(WEAK, STRONG, strict=True):
        p = softmax(zw)
        mask.append(1.0 if max(p) >= p_cutoff else 0.0)
        target = softmax(zw, T) if sharpen else p
        unsup += mask[-1] * -sum(t * v for t, v in zip(target, log_softmax(zs), strict=True))
    return sup + lambda_u * unsup / len(WEAK), mask


@pytest.mark.parametrize("schedule, t, expected", [
    ("none", 0.3, 1.0),
    ("linear", 0.5, 0.5 * 0.75 + 0.25),
    ("exp", 0.5, math.exp(-2.5) * 0.75 + 0.25),
    ("log", 0.5, (1 - math.exp(-2.5)) * 0.75 + 0.25),
    ("exp", 0.0, math.exp(-5.0) * 0.75 + 0.25),
    ("linear", 1.0, 1.0),
])
def test_tsa_schedules(schedule, t, expected):
    assert tsa_threshold(schedule, int(t * 100), 100, 4) == pytest.approx(expected)


def test_loss_without_tsa_sharpened_target():
    res = step(make(), 5)
    loss, mask = hand(tsa=1.0)
    assert mask == [1.0, 0.0, 1.0, 0.0]
    assert res.mask.tolist() == mask
    assert res.pseudo_label.tolist() == [0, 0, 2, 0]
    assert res.loss.item() == pytest.approx(loss, rel=1e-6)
    assert res.log["sup_mask_ratio"] == 1.0


def test_sharpening_changes_the_loss_and_can_be_turned_off():
    sharp, flat = step(make(), 0), step(make(sharpen=False), 0)
    assert sharp.loss.item() == pytest.approx(hand(1.0)[0], rel=1e-6)
    assert flat.loss.item() == pytest.approx(hand(1.0, sharpen=False)[0], rel=1e-6)
    assert sharp.loss.item() != pytest.approx(flat.loss.item(), rel=1e-3)
    lower_t = step(make(T=0.2, p_cutoff=0.5, lambda_u=3.0), 0)
    assert lower_t.loss.item() == pytest.approx(
        hand(1.0, p_cutoff=0.5, lambda_u=3.0, T=0.2)[0], rel=1e-6)


def test_tsa_drops_confident_labelled_samples():
    res = step(make(tsa_schedule="linear"), 5)  # t = 0.5: tsa = 0.5 * 2/3 + 1/3
    tsa = 0.5 * (2 / 3) + 1 / 3
    assert res.log["tsa"] == pytest.approx(tsa)
    assert res.log["sup_mask_ratio"] == 0.5
    assert res.loss.item() == pytest.approx(hand(tsa)[0], rel=1e-6)


def test_tsa_defaults_per_domain():
    assert make_params("uda", {}, "text").tsa_schedule == "exp"
    assert make_params("uda", {}, "image").tsa_schedule == "none"
    assert make_params("uda", {}, "audio").tsa_schedule == "none"
    assert make_params("uda", {"tsa_schedule": "linear"}, "text").tsa_schedule == "linear"
