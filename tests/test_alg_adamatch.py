"""AdaMatch's loss (relative threshold, alignment towards the labelled prediction) against
values computed by hand."""

import pytest
import torch

from semibench.algorithms import Batch, Outputs, create_algorithm
from tests.alg_helpers import argmax, log_softmax, softmax

LB = [[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]]
LB2 = [[5.0, 0.0, 0.0], [0.0, 6.0, 0.0]]
Y = [0, 2]
WEAK = [[4.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 5.0], [0.0, 2.2, 0.0]]
STRONG = [[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.5, -1.0, 2.0], [0.0, 1.0, 1.0]]
C = 3


def make(**params):
    return create_algorithm("adamatch", params, num_classes=C, num_iterations=10, num_ulb=4)


def step(alg, lb=LB, it=0):
    out = Outputs(logits={"lb_weak": torch.tensor(lb), "ulb_weak": torch.tensor(WEAK),
                          "ulb_strong": torch.tensor(STRONG)}, feats={})
    return alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(Y), idx_ulb=torch.arange(4)),
                            it)


class Hand:
    def __init__(self, m, p_cutoff):
        self.m, self.p_cutoff = m, p_cutoff
        self.p_target = [1 / C] * C
        self.p_model = None

    def step(self, lb, lambda_u=1.0):
        m, n = self.m, len(WEAK)
        p_lb = [softmax(z) for z in lb]
        probs = [softmax(z) for z in WEAK]
        mean_p = [sum(p[c] for p in probs) / n for c in range(C)]
        mean_lb = [sum(p[c] for p in p_lb) / len(p_lb) for c in range(C)]
        self.p_model = mean_p if self.p_model is None else [
            m * a + (1 - m) * b for a, b in zip(self.p_model, mean_p, strict=True)]
        self.p_target = [m * a + (1 - m) * b for a, b in zip(self.p_target, mean_lb, strict=True)]
        aligned = []
        for p in probs:
            r = [p[c] * (self.p_target[c] + 1e-6) / (self.p_model[c] + 1e-6) for c in range(C)]
            aligned.append([v / sum(r) for v in r])
        tau = self.p_cutoff * sum(max(p) for p in p_lb) / len(p_lb)
        mask = [1.0 if max(a) >= tau else 0.0 for a in aligned]
        sup = sum(-log_softmax(z)[y] for z, y in zip(lb, Y, strict=True)) / len(lb)
        unsup = sum(mk * -log_softmax(zs)[argmax(a)]
                    for mk, a, zs in zip(mask, aligned, STRONG, strict=True)) / n
        return sup + lambda_u * unsup, mask, tau, aligned


def test_loss_by_hand():
    hand = Hand(0.999, 0.95)
    loss, mask, tau, aligned = hand.step(LB, lambda_u=1.5)
    res = step(make(lambda_u=1.5))
    assert 0.0 in mask and 1.0 in mask
    assert res.mask.tolist() == mask
    assert res.pseudo_label.tolist() == [argmax(a) for a in aligned]
    assert res.log["threshold"] == pytest.approx(tau, rel=1e-6)
    assert res.loss.item() == pytest.approx(loss, rel=1e-5)


def test_threshold_is_cutoff_times_current_labelled_confidence():
    """No EMA: each step's threshold comes from that step's labelled batch only."""
    alg, hand = make(p_cutoff=0.9, ema_p=0.5), Hand(0.5, 0.9)
    for it, lb in enumerate([LB, LB2, LB]):
        loss, mask, _, _ = hand.step(lb)
        res = step(alg, lb, it)
        conf = [max(softmax(z)) for z in lb]
        assert res.log["threshold"] == pytest.approx(0.9 * sum(conf) / len(conf), rel=1e-6)
        assert res.mask.tolist() == mask
        assert res.loss.item() == pytest.approx(loss, rel=1e-5)
    state = alg.state_dict()["dist_align"]
    assert state["p_target"].tolist() == pytest.approx(hand.p_target, rel=1e-5)
    assert state["p_model"].tolist() == pytest.approx(hand.p_model, rel=1e-5)
