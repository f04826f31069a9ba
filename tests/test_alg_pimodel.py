"""Π-model: its loss against values computed by hand, the ramp, and the batch-norm freezing of
the unlabelled passes."""

import copy

import pytest
import torch

from semibench.algorithms import Batch, Outputs, create_algorithm
from tests.alg_helpers import ce, softmax
from tests.helpers.nets import BNNet

LB = [[2.0, 0.0, -1.0], [0.0, 1.0, 3.0]]
Y = [0, 1]
WEAK = [[4.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, -2.0, 5.0]]
WEAK2 = [[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.5, -1.0, 2.0]]


def make(num_iterations=10, **params):
    return create_algorithm("pimodel", params, num_classes=3, num_iterations=num_iterations,
                            num_ulb=3)


def run(alg, iteration, weak=WEAK, weak2=WEAK2):
    out = Outputs(logits={"lb_weak": torch.tensor(LB), "ulb_weak": torch.as_tensor(weak),
                          "ulb_weak2": torch.as_tensor(weak2)}, feats={})
    return alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(Y)), iteration)


def expected(lambda_u, ramp):
    sup = sum(ce(z, y) for z, y in zip(LB, Y, strict=True)) / len(LB)
    unsup = 0.0
    for zw, z2 in zip(WEAK, WEAK2, strict=True):
        pw, p2 = softmax(zw), softmax(z2)
        unsup += sum((a - b) ** 2 for a, b in zip(p2, pw, strict=True)) / len(pw)
    return sup + lambda_u * ramp * unsup / len(WEAK), sup, unsup / len(WEAK)


def test_loss_by_hand_with_defaults():
    # USB: lambda_u = 10, unsup_warm_up = 0.4 -> at iteration 3 of 10 the ramp is 3 / 4
    res = run(make(), iteration=3)
    total, sup, unsup = expected(10.0, 0.75)
    assert res.loss.item() == pytest.approx(total, rel=1e-6)
    assert res.log["sup_loss"] == pytest.approx(sup, rel=1e-6)
    assert res.log["unsup_loss"] == pytest.approx(unsup, rel=1e-6)
    assert res.mask is None


def test_loss_by_hand_weight_without_warm_up():
    res = run(make(lambda_u=2.5, unsup_warm_up=0.0), iteration=0)
    assert res.loss.item() == pytest.approx(expected(2.5, 1.0)[0], rel=1e-6)


def test_ramp_grows_linearly_to_one_at_warm_up_end():
    alg = make(num_iterations=100, lambda_u=4.0, unsup_warm_up=0.4)
    _, sup, unsup = expected(1.0, 1.0)
    for it in [0, 1, 10, 20, 39, 40, 41, 70, 99]:
        res = run(alg, it)
        ramp = min(it / 40, 1.0)
        assert res.log["unsup_ramp"] == pytest.approx(ramp)
        assert res.loss.item() - sup == pytest.approx(4.0 * ramp * unsup, rel=1e-5, abs=1e-7)


def test_weak_view_is_a_fixed_target():
    weak = torch.tensor(WEAK, requires_grad=True)
    weak2 = torch.tensor(WEAK2, requires_grad=True)
    run(make(unsup_warm_up=0.0), 0, weak, weak2).loss.backward()
    assert weak.grad is None or torch.count_nonzero(weak.grad) == 0
    assert weak2.grad.abs().sum() > 0


def test_unlabelled_passes_keep_gradients_but_not_bn_statistics():
    model = BNNet().train()
    labelled_only = copy.deepcopy(model)
    torch.manual_seed(1)
    x = {"lb_weak": torch.randn(5, 4), "ulb_weak": torch.randn(7, 4) + 3.0,
         "ulb_weak2": torch.randn(7, 4) - 2.0}
    before = model.body[1].running_mean.clone()

    out = make().forward(model, x, cat=True)
    labelled_only(x["lb_weak"])  # the statistics a labelled-only pass leaves
    bn, ref = model.body[1], labelled_only.body[1]
    assert not torch.equal(bn.running_mean, before)
    assert torch.equal(bn.running_mean, ref.running_mean)
    assert torch.equal(bn.running_var, ref.running_var)
    assert int(bn.num_batches_tracked) == 1

    # each unlabelled view is its own pass, normalised by its own batch statistics
    for key in ("ulb_weak", "ulb_weak2"):
        assert out.logits[key].requires_grad
        alone = copy.deepcopy(labelled_only)(x[key])
        assert torch.allclose(out.logits[key], alone, atol=1e-6)

    res = make(unsup_warm_up=0.0).compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor([0] * 5)), 0)
    res.loss.backward()  # backward through the frozen passes works
    assert model.body[0].weight.grad.abs().sum() > 0
