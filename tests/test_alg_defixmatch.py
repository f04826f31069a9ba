"""DeFixMatch against values computed by hand from the paper's formula (explicit loops), and
its parameter checks."""

import pytest
import torch

from semibench.algorithms import Batch, Outputs, create_algorithm
from tests.alg_helpers import log_softmax, softmax

LB_W = [[5.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 4.5]]
LB_S = [[1.0, 0.5, 0.0], [0.0, 0.0, 2.0], [2.0, 0.0, 1.0]]
Y = [0, 1, 1]  # the third labelled sample is confidently mis-predicted
WEAK = [[4.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 5.0], [0.0, 3.5, 0.0]]
STRONG = [[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.5, -1.0, 2.0], [1.0, 1.0, 1.0]]


def fixmatch_term(weak, strong, tau):
    total = 0.0
    for zw, zs in zip(weak, strong, strict=True):
        p = softmax(zw)
        if max(p) >= tau:
            total += -log_softmax(zs)[p.index(max(p))]
    return total / len(weak)  # masked samples still count in the denominator


def expected(tau=0.95, lambda_u=0.5):
    ce_w = sum(-log_softmax(z)[y] for z, y in zip(LB_W, Y, strict=True)) / len(Y)
    ce_s = sum(-log_softmax(z)[y] for z, y in zip(LB_S, Y, strict=True)) / len(Y)
    sup = 0.5 * (ce_w + ce_s)
    unsup = fixmatch_term(WEAK, STRONG, tau)
    anti = fixmatch_term(LB_W, LB_S, tau)
    return {"loss": sup + lambda_u * (unsup - anti), "sup": sup, "unsup": unsup, "anti": anti}


def run(**params):
    alg = create_algorithm("defixmatch", params, num_classes=3, num_iterations=10, num_ulb=4)
    out = Outputs(logits={"lb_weak": torch.tensor(LB_W), "lb_strong": torch.tensor(LB_S),
                          "ulb_weak": torch.tensor(WEAK), "ulb_strong": torch.tensor(STRONG)},
                  feats={})
    return alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(Y)), 0)


@pytest.mark.parametrize("params", [{}, {"p_cutoff": 0.9, "lambda_u": 1.5}])
def test_defixmatch_loss_by_hand(params):
    """{}: the defaults are USB's (tau 0.95, lambda_u 0.5) and use the labelled strong view."""
    res = run(**params)
    exp = expected(params.get("p_cutoff", 0.95), params.get("lambda_u", 0.5))
    assert res.log["sup_loss"] == pytest.approx(exp["sup"], rel=1e-6)
    assert res.log["unsup_loss"] == pytest.approx(exp["unsup"], rel=1e-6)
    assert res.log["anti_loss"] == pytest.approx(exp["anti"], rel=1e-6)
    assert res.loss.item() == pytest.approx(exp["loss"], rel=1e-6)


def test_defixmatch_masks_and_the_debiasing_term_is_not_zero():
    res = run()
    # unlabelled: 0.9647 passes, 0.576 fails, 0.9867 passes, 0.943 fails
    assert res.mask.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert res.pseudo_label.tolist() == [0, 0, 2, 1]
    assert res.log["anti_loss"] > 0  # the labelled samples 0 and 2 pass the threshold


def test_defixmatch_pseudo_labels_carry_no_gradient():
    lb_w = torch.tensor(LB_W, requires_grad=True)
    weak = torch.tensor(WEAK, requires_grad=True)
    alg = create_algorithm("defixmatch", {}, num_classes=3, num_iterations=10, num_ulb=4)
    out = Outputs(logits={"lb_weak": lb_w, "lb_strong": torch.tensor(LB_S),
                          "ulb_weak": weak, "ulb_strong": torch.tensor(STRONG)}, feats={})
    alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(Y)), 0).loss.backward()
    assert weak.grad is None
    # the labelled weak logits only get the supervised gradient: 0.5 * (softmax - onehot) / 3
    for i, (z, y) in enumerate(zip(LB_W, Y, strict=True)):
        p = softmax(z)
        want = [0.5 * (p[k] - (1.0 if k == y else 0.0)) / len(Y) for k in range(3)]
        assert lb_w.grad[i].tolist() == pytest.approx(want, abs=1e-6)
