"""SoftMatch's loss (uniform alignment, truncated-Gaussian weights, raw pseudo-labels) against
values computed by hand."""

import math

import pytest
import torch

from semibench.algorithms import Batch, Outputs, create_algorithm
from tests.alg_helpers import argmax, log_softmax, softmax

LB = [[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]]
Y = [0, 2]
# class 0 dominates the batch mean, so alignment moves the argmax of samples 1 and 2
WEAK = [[4.0, 0.0, 0.0], [1.0, 0.8, -2.0], [3.0, 0.0, 0.5]]
STRONG = [[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.5, -1.0, 2.0]]
WEAK2 = [[0.0, 2.0, 0.0], [0.5, 0.0, 0.4], [0.0, 0.0, 3.0]]
C = 3


def make(**params):
    return create_algorithm("softmatch", params, num_classes=C, num_iterations=10, num_ulb=3)


def step(alg, weak, it=0):
    out = Outputs(logits={"lb_weak": torch.tensor(LB), "ulb_weak": torch.tensor(weak),
                          "ulb_strong": torch.tensor(STRONG)}, feats={})
    return alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(Y), idx_ulb=torch.arange(3)),
                            it)


class Hand:
    """SoftMatch's running state and loss by the definition, with loops."""

    def __init__(self, m, n_sigma=2.0):
        self.m, self.n_sigma = m, n_sigma
        self.p_model = None
        self.mu, self.var = 1 / C, 1.0

    def step(self, weak, lambda_u=1.0):
        n, m = len(weak), self.m
        probs = [softmax(z) for z in weak]
        mean_p = [sum(p[c] for p in probs) / n for c in range(C)]
        if self.p_model is None:
            self.p_model = mean_p
        else:
            self.p_model = [m * a + (1 - m) * b for a, b in zip(self.p_model, mean_p, strict=True)]
        aligned = []
        for p in probs:
            r = [p[c] * (1 / C + 1e-6) / (self.p_model[c] + 1e-6) for c in range(C)]
            aligned.append([v / sum(r) for v in r])
        conf = [max(a) for a in aligned]
        mean_conf = sum(conf) / n
        self.mu = m * self.mu + (1 - m) * mean_conf
        self.var = m * self.var + (1 - m) * sum((v - mean_conf) ** 2 for v in conf) / (n - 1)
        weights = []
        for v in conf:
            below = min(v - self.mu, 0.0)
            weights.append(math.exp(-below**2 / (2 * self.var / self.n_sigma**2)))
        sup = sum(-log_softmax(z)[y] for z, y in zip(LB, Y, strict=True)) / len(LB)
        unsup = sum(w * -log_softmax(zs)[argmax(p)]
                    for w, p, zs in zip(weights, probs, STRONG, strict=True)) / n
        return sup + lambda_u * unsup, weights, aligned


def test_loss_by_hand_with_raw_pseudo_labels():
    hand = Hand(0.0)  # mu = the batch mean, so a sample falls below it
    loss, weights, aligned = hand.step(WEAK, lambda_u=2.0)
    assert [argmax(a) for a in aligned] == [0, 1, 2]  # the aligned argmaxes differ ...
    res = step(make(ema_p=0.0, lambda_u=2.0), WEAK)
    assert res.pseudo_label.tolist() == [0, 0, 0]  # ... but the raw argmax is the label
    assert res.mask.tolist() == pytest.approx(weights, rel=1e-5)
    assert 0.0 < min(weights) < 1.0 and max(weights) == 1.0
    assert res.loss.item() == pytest.approx(loss, rel=1e-5)


def test_mu_var_and_alignment_follow_their_emas():
    hand, alg = Hand(0.7, n_sigma=3.0), make(ema_p=0.7, n_sigma=3.0)
    for it, weak in enumerate([WEAK, WEAK2, WEAK, WEAK2]):
        loss, weights, _ = hand.step(weak)
        res = step(alg, weak, it)
        assert res.log["mu"] == pytest.approx(hand.mu, rel=1e-5)
        assert res.log["var"] == pytest.approx(hand.var, rel=1e-5)
        assert alg.state_dict()["dist_align"]["p_model"].tolist() == pytest.approx(
            hand.p_model, rel=1e-5)
        assert res.mask.tolist() == pytest.approx(weights, rel=1e-5)
        assert res.loss.item() == pytest.approx(loss, rel=1e-5)


def test_without_alignment_weights_use_raw_confidence():
    res = step(make(ema_p=0.5, dist_align=False), WEAK)
    conf = [max(softmax(z)) for z in WEAK]
    mean = sum(conf) / 3
    mu = 0.5 / 3 + 0.5 * mean
    var = 0.5 + 0.5 * sum((v - mean) ** 2 for v in conf) / 2
    expected = [math.exp(-min(v - mu, 0.0) ** 2 / (2 * var / 4)) for v in conf]
    assert res.mask.tolist() == pytest.approx(expected, rel=1e-5)
    # the flag matters here (USB aligns whatever it says): aligned weights differ
    aligned = step(make(ema_p=0.5, dist_align=True), WEAK).mask.tolist()
    assert aligned != pytest.approx(expected, rel=1e-3)


def test_state_round_trip_continues_exactly():
    alg = make(ema_p=0.8)
    step(alg, WEAK)
    copy = make(ema_p=0.8)
    copy.load_state_dict(alg.state_dict())
    a, b = step(alg, WEAK2, 1), step(copy, WEAK2, 1)
    assert a.loss.item() == b.loss.item() and a.mask.tolist() == b.mask.tolist()
