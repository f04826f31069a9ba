"""Pseudo-Label: its loss against values computed by hand (mask, hard labels on the same
logits, ramp), its gradient, and the batch-norm freezing of the unlabelled pass."""

import copy

import pytest
import torch

from semibench.algorithms import Batch, Outputs, create_algorithm
from tests.alg_helpers import ce, softmax
from tests.helpers.nets import BNNet

LB = [[2.0, 0.0, -1.0], [0.0, 1.0, 3.0]]
Y = [0, 2]
# max softmax: 0.9647 (passes 0.95), 0.576 (fails), 0.9972 (passes), 0.9537 (passes)
WEAK = [[4.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, -2.0, 6.0], [0.0, 4.0, 0.5]]


def make(num_iterations=10, **params):
    return create_algorithm("pseudolabel", params, num_classes=3,
                            num_iterations=num_iterations, num_ulb=4)


def run(alg, iteration, weak=None):
    weak = torch.tensor(WEAK) if weak is None else weak
    out = Outputs(logits={"lb_weak": torch.tensor(LB), "ulb_weak": weak}, feats={})
    return alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(Y)), iteration)


def expected(p_cutoff, lambda_u, ramp):
    sup = sum(ce(z, y) for z, y in zip(LB, Y, strict=True)) / len(LB)
    unsup = 0.0
    for z in WEAK:
        p = softmax(z)
        if max(p) >= p_cutoff:
            unsup += ce(z, p.index(max(p)))  # the label fits the logits it came from
    unsup /= len(WEAK)  # masked samples still count in the denominator
    return sup + lambda_u * ramp * unsup, sup, unsup


def test_loss_by_hand_with_defaults():
    res = run(make(), iteration=2)  # ramp = 2 / (0.4 * 10) = 0.5
    assert res.mask.tolist() == [1.0, 0.0, 1.0, 1.0]
    assert res.pseudo_label.tolist() == [0, 0, 2, 1]
    total, sup, unsup = expected(0.95, 1.0, 0.5)
    assert res.loss.item() == pytest.approx(total, rel=1e-6)
    assert res.log["sup_loss"] == pytest.approx(sup, rel=1e-6)
    assert res.log["unsup_loss"] == pytest.approx(unsup, rel=1e-6)


def test_loss_by_hand_threshold_and_weight():
    res = run(make(p_cutoff=0.96, lambda_u=3.0, unsup_warm_up=0.0), iteration=0)
    assert res.mask.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert res.loss.item() == pytest.approx(expected(0.96, 3.0, 1.0)[0], rel=1e-6)


def test_ramp_grows_linearly_to_one_at_warm_up_end():
    alg = make(num_iterations=50, lambda_u=2.0, unsup_warm_up=0.4)
    _, sup, unsup = expected(0.95, 1.0, 1.0)
    for it in [0, 5, 10, 19, 20, 21, 49]:
        ramp = min(it / 20, 1.0)
        res = run(alg, it)
        assert res.loss.item() - sup == pytest.approx(2.0 * ramp * unsup, rel=1e-5, abs=1e-7)


def test_gradient_reaches_only_the_confident_rows():
    weak = torch.tensor(WEAK, requires_grad=True)
    run(make(lambda_u=2.0, unsup_warm_up=0.0), 0, weak).loss.backward()
    for i, z in enumerate(WEAK):
        p = softmax(z)
        k = p.index(max(p))
        for c in range(3):
            # d/dz CE(z, k) = softmax(z) - onehot(k), times lambda_u * mask / batch size
            want = 2.0 * (p[c] - (c == k)) / len(WEAK) if max(p) >= 0.95 else 0.0
            assert weak.grad[i, c].item() == pytest.approx(want, abs=1e-6)


def test_unlabelled_pass_keeps_gradient_but_not_bn_statistics():
    model = BNNet().train()
    labelled_only = copy.deepcopy(model)
    torch.manual_seed(1)
    x = {"lb_weak": torch.randn(5, 4), "ulb_weak": torch.randn(8, 4) * 3.0}
    out = make().forward(model, x, cat=True)
    labelled_only(x["lb_weak"])
    assert torch.equal(model.body[1].running_mean, labelled_only.body[1].running_mean)
    assert torch.equal(model.body[1].running_var, labelled_only.body[1].running_var)
    assert out.logits["ulb_weak"].requires_grad
    assert torch.allclose(out.logits["ulb_weak"], copy.deepcopy(labelled_only)(x["ulb_weak"]),
                          atol=1e-6)
    batch = Batch(x_lb={}, y_lb=torch.zeros(5, dtype=torch.long))
    make(p_cutoff=0.3, unsup_warm_up=0.0).compute_loss(out, batch, 0).loss.backward()
    assert model.body[0].weight.grad.abs().sum() > 0
