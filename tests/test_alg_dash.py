"""Dash: supervised warm-up, rho_init from the warm-up's labelled loss, rho's decay schedule
down to rho_min, and the loss-thresholded mask, against values computed by hand."""

import pytest
import torch

from semibench.algorithms import Batch, Outputs, create_algorithm, make_params
from tests.alg_helpers import argmax, ce, softmax

Y = [0, 2]
LB_SSL = [[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]]
WEAK = [[4.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 5.0], [0.5, 0.4, 0.0]]
STRONG = [[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.5, -1.0, 2.0], [0.3, 0.2, 0.1]]
C = 3
# 100 iterations: warm-up W = 0.04 * 100 = 4 iterations, rho decays every 0.05 * 100 = 5
SETTINGS = {"warmup_fraction": 0.04, "decay_every_fraction": 0.05, "gamma": 2.0}


def lb_at(it):
    """A labelled batch whose loss falls during the warm-up."""
    return [[0.5 * it, 0.0, 0.0], [0.0, 0.0, 0.0]] if it < 4 else LB_SSL


def make(**params):
    return create_algorithm("dash", {**SETTINGS, **params}, num_classes=C, num_iterations=100,
                            num_ulb=4)


def step(alg, it):
    out = Outputs(logits={"lb_weak": torch.tensor(lb_at(it)), "ulb_weak": torch.tensor(WEAK),
                          "ulb_strong": torch.tensor(STRONG)}, feats={})
    return alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(Y), idx_ulb=torch.arange(4)),
                            it)


def sup_at(it):
    return sum(ce(z, y) for z, y in zip(lb_at(it), Y, strict=True)) / 2


def hand_ssl_loss(rho, it=99, rho_min=0.05, T=0.5, lambda_u=1.0):
    unsup, mask = 0.0, []
    for zw, zs in zip(WEAK, STRONG, strict=True):
        target = argmax(softmax(zw)) if rho <= rho_min else softmax(zw, T)
        mask.append(1.0 if ce(zw, target) <= rho else 0.0)
        unsup += mask[-1] * ce(zs, target)
    return sup_at(it) + lambda_u * unsup / len(WEAK), mask


def test_warmup_is_supervised_only():
    alg = make()
    assert alg.warmup_iterations == 4 and alg.decay_every == 5
    for it in range(4):
        res = step(alg, it)
        assert res.loss.item() == pytest.approx(sup_at(it), rel=1e-6)
        assert res.mask.tolist() == [0.0] * 4
        assert res.log["unsup_loss"] == 0.0


def test_rho_init_and_decay_schedule_down_to_rho_min():
    alg = make()
    # rho_init: the mean labelled loss over the second half of the warm-up (iterations 2, 3)
    rho_init = (sup_at(2) + sup_at(3)) / 2
    rho, k, seen = None, 0, []
    for it in range(60):
        res = step(alg, it)
        if it < 4:
            continue
        if (it - 4) % 5 == 0:  # decays at 4, 9, 14, ...
            rho = max(1.0001 * 2.0 ** (-k) * rho_init, 0.05)
            k += 1
        assert res.log["rho"] == pytest.approx(rho, rel=1e-6)
        loss, mask = hand_ssl_loss(rho, it)
        assert res.mask.tolist() == mask
        assert res.loss.item() == pytest.approx(loss, rel=1e-5)
        seen.append(rho)
    assert alg.state_dict()["rho_init"].item() == pytest.approx(rho_init, rel=1e-6)
    assert seen[0] == pytest.approx(1.0001 * rho_init)
    assert seen[5] == pytest.approx(1.0001 * rho_init / 2)  # one decay 5 iterations later
    assert all(a >= b for a, b in zip(seen, seen[1:], strict=False))
    assert seen[-1] == 0.05  # reached the floor: hard labels from then on
    # the mask shrinks as rho decays (soft targets), then uses hard labels at the floor
    assert sum(hand_ssl_loss(seen[0])[1]) > sum(hand_ssl_loss(seen[15])[1])
    assert alg.state_dict()["rho_update_cnt"].item() == k


def test_configured_rho_init_and_no_warmup():
    alg = make(rho_init=0.5, warmup_fraction=0.0)
    assert alg.warmup_iterations == 0
    res = step(alg, 0)
    assert res.log["rho"] == pytest.approx(1.0001 * 0.5)
    loss, mask = hand_ssl_loss(1.0001 * 0.5, it=0)
    assert res.mask.tolist() == mask and res.loss.item() == pytest.approx(loss, rel=1e-5)


def test_state_round_trip_continues_exactly():
    alg = make()
    for it in range(7):
        step(alg, it)
    copy = make()
    copy.load_state_dict(alg.state_dict())
    for it in range(7, 30):
        a, b = step(alg, it), step(copy, it)
        assert a.log == b.log and a.mask.tolist() == b.mask.tolist()


def test_usb_schedule_per_domain():
    image = make_params("dash", {}, "image")
    text = make_params("dash", {}, "text")
    audio = make_params("dash", {}, "audio")
    assert (image.warmup_fraction, image.decay_every_fraction) == (0.01, 0.05)
    assert (text.warmup_fraction, text.decay_every_fraction) == (0.02, 0.1)
    assert (audio.warmup_fraction, audio.decay_every_fraction) == (0.02, 0.1)
    # at USB's run lengths: 2048 warm-up iterations, rho decays every 10 x 1024 iterations
    cv = create_algorithm("dash", {}, domain="image", num_classes=10, num_iterations=204_800,
                          num_ulb=10)
    nlp = create_algorithm("dash", {}, domain="text", num_classes=10, num_iterations=102_400,
                           num_ulb=10)
    assert (cv.warmup_iterations, cv.decay_every) == (2048, 10_240)
    assert (nlp.warmup_iterations, nlp.decay_every) == (2048, 10_240)
    assert (image.gamma, image.C, image.rho_min, image.T) == (1.27, 1.0001, 0.05, 0.5)
