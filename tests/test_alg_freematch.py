"""FreeMatch's loss (self-adaptive mask and fairness term) against values computed by hand."""

import math

import pytest
import torch

from semibench.algorithms import Batch, Outputs, create_algorithm
from semibench.algorithms.freematch import fairness_loss
from tests.alg_helpers import argmax, log_softmax, softmax

LB = [[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]]
Y = [0, 2]
WEAK = [[4.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 5.0], [0.2, 0.0, 0.1]]
# strong argmaxes 1, 1, 2, 0: class 0 is predicted only by the last (masked-out) sample
STRONG = [[1.0, 2.0, 0.0], [0.0, 3.0, 0.0], [0.5, -1.0, 2.0], [2.0, 0.0, 0.0]]
C = 3


def make(**params):
    return create_algorithm("freematch", params, num_classes=C, num_iterations=10, num_ulb=4)


def step(alg, weak=WEAK, strong=STRONG, it=0):
    out = Outputs(logits={"lb_weak": torch.tensor(LB), "ulb_weak": torch.tensor(weak),
                          "ulb_strong": torch.tensor(strong, requires_grad=True)}, feats={})
    batch = Batch(x_lb={}, y_lb=torch.tensor(Y), idx_ulb=torch.arange(len(weak)))
    return alg.compute_loss(out, batch, it), out.logits["ulb_strong"]


def hand(m, lambda_u, lambda_e):
    """One FreeMatch step from fresh state, by the definition, with loops."""
    n = len(WEAK)
    probs = [softmax(z) for z in WEAK]
    time_p = m / C + (1 - m) * sum(max(p) for p in probs) / n
    p_model = [m / C + (1 - m) * sum(p[c] for p in probs) / n for c in range(C)]
    hist = [m / C + (1 - m) * sum(1 for p in probs if argmax(p) == c) / n for c in range(C)]
    mask = []
    for p in probs:
        c = argmax(p)
        mask.append(1.0 if p[c] >= time_p * p_model[c] / max(p_model) else 0.0)
    sup = sum(-log_softmax(z)[y] for z, y in zip(LB, Y, strict=True)) / len(LB)
    unsup = sum(mk * -log_softmax(zs)[argmax(p)]
                for mk, p, zs in zip(mask, probs, STRONG, strict=True)) / n
    # fairness term over the masked strong predictions
    q = [softmax(zs) for mk, zs in zip(mask, STRONG, strict=True) if mk]
    hist_s = [sum(1 for r in q if argmax(r) == c) / len(q) for c in range(C)]
    mean_q = [sum(r[c] for r in q) / len(q) for c in range(C)]
    a = [p_model[c] / hist[c] if hist[c] > 0 else 0.0 for c in range(C)]
    b = [mean_q[c] / hist_s[c] if hist_s[c] > 0 else 0.0 for c in range(C)]
    a = [v / sum(a) for v in a]
    b = [v / sum(b) for v in b]
    fair = sum(a[c] * math.log(b[c] + 1e-12) for c in range(C))
    return sup + lambda_u * unsup + lambda_e * fair, mask, fair, time_p, p_model, hist


def test_loss_by_hand():
    m, lambda_u, lambda_e = 0.9, 1.5, 0.5
    res, _ = step(make(ema_p=m, lambda_u=lambda_u, lambda_e=lambda_e))
    loss, mask, fair, time_p, p_model, hist = hand(m, lambda_u, lambda_e)
    assert mask == [1.0, 1.0, 1.0, 0.0]  # the flat last sample stays below its threshold
    assert res.mask.tolist() == mask
    assert res.pseudo_label.tolist() == [0, 0, 2, 0]
    assert res.log["fair_loss"] == pytest.approx(fair, rel=1e-5)
    assert res.loss.item() == pytest.approx(loss, rel=1e-5)
    assert res.log["global_threshold"] == pytest.approx(time_p, rel=1e-6)


def test_fairness_term_is_non_positive_and_has_a_gradient():
    res, strong = step(make(ema_p=0.9))
    assert res.log["fair_loss"] <= 0.0  # USB's sign: a negative cross-entropy
    alg = make(ema_p=0.9)
    strong = torch.tensor(STRONG, requires_grad=True)
    fair = fairness_loss(strong, torch.tensor([1.0, 1.0, 1.0, 0.0]),
                         alg.thresholds.p_model, alg.thresholds.label_hist)
    fair.backward()
    assert strong.grad[:3].abs().sum() > 0 and strong.grad[3].abs().sum() == 0


def test_fairness_term_is_zero_without_selected_samples():
    strong = torch.tensor(STRONG)
    fair = fairness_loss(strong, torch.zeros(4), torch.full((3,), 1 / 3), torch.full((3,), 1 / 3))
    assert fair.item() == 0.0


def test_default_parameters_give_the_loss_by_hand_with_usbs_values():
    res, _ = step(make())  # USB: ema_p 0.999, lambda_u 1, lambda_e 0.001
    loss, mask, *_ = hand(0.999, 1.0, 0.001)
    assert res.mask.tolist() == mask
    assert res.loss.item() == pytest.approx(loss, rel=1e-5)


def test_threshold_follows_ema_of_confidence_over_steps():
    m = 0.8
    alg = make(ema_p=m)
    time_p = 1 / C
    batches = [WEAK, [[0.0, 3.0, 0.0], [0.0, 0.1, 0.0], [2.0, 2.5, 0.0], [0.0, 0.0, 9.0]],
               [[5.0, 0.0, 0.0]] * 4]
    for it, weak in enumerate(batches):
        res, _ = step(alg, weak=weak, it=it)
        conf = [max(softmax(z)) for z in weak]
        time_p = m * time_p + (1 - m) * sum(conf) / len(conf)
        assert res.log["global_threshold"] == pytest.approx(time_p, rel=1e-5)
    assert alg.state_dict()["time_p"].item() == pytest.approx(time_p, rel=1e-5)
