"""FixMatch's loss against values computed by hand from the paper's formula."""

import pytest
import torch

from semibench.algorithms import Batch, Outputs, create_algorithm
from tests.alg_helpers import log_softmax, softmax

LB = [[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]]
Y = [0, 2]
WEAK = [[4.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 5.0]]
STRONG = [[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.5, -1.0, 2.0]]


def run(**params):
    alg = create_algorithm("fixmatch", params, num_classes=3, num_iterations=10, num_ulb=3)
    out = Outputs(
        logits={
            "lb_weak": torch.tensor(LB),
            "ulb_weak": torch.tensor(WEAK),
            "ulb_strong": torch.tensor(STRONG),
        },
        feats={},
    )
    batch = Batch(x_lb={}, y_lb=torch.tensor(Y), idx_ulb=torch.arange(3))
    return alg.compute_loss(out, batch, 0)


def expected_loss(p_cutoff, lambda_u, hard=True, T=0.5):
    sup = sum(-log_softmax(z)[y] for z, y in zip(LB, Y, strict=True)) / len(LB)
    unsup = 0.0
    for zw, zs in zip(WEAK, STRONG, strict=True):
        p = softmax(zw)
        if max(p) < p_cutoff:
            continue  # masked out, but still counted in the denominator
        if hard:
            unsup += -log_softmax(zs)[p.index(max(p))]
        else:
            sharp = [v ** (1 / T) for v in p]
            target = [v / sum(sharp) for v in sharp]
            unsup += -sum(t * log_softmax(zs)[k] for k, t in enumerate(target))
    return sup + lambda_u * unsup / len(WEAK)


def test_fixmatch_hard_labels_by_hand():
    res = run(p_cutoff=0.95, lambda_u=1.0)
    # sample 0: max p = e^4/(e^4+2) = 0.9647 passes; sample 1 (0.576) fails; sample 2 passes
    assert res.mask.tolist() == [1.0, 0.0, 1.0]
    assert res.pseudo_label.tolist() == [0, 0, 2]
    assert res.loss.item() == pytest.approx(expected_loss(0.95, 1.0), rel=1e-6)


def test_fixmatch_threshold_and_weight():
    res = run(p_cutoff=0.97, lambda_u=2.5)
    assert res.mask.tolist() == [0.0, 0.0, 1.0]  # 0.9647 < 0.97 now
    assert res.loss.item() == pytest.approx(expected_loss(0.97, 2.5), rel=1e-6)


def test_fixmatch_soft_sharpened_labels():
    res = run(p_cutoff=0.5, lambda_u=1.0, hard_label=False, T=0.5)
    assert res.loss.item() == pytest.approx(expected_loss(0.5, 1.0, hard=False, T=0.5), rel=1e-6)


@pytest.mark.parametrize("algorithm", ["fixmatch", "flexmatch"])
def test_soft_labels_are_sharpened_by_T_and_T_1_is_usbs_unsharpened_target(algorithm):
    """The documented deviation: USB ignores T for soft labels (target = p); here the target
    is p^(1/T) renormalised, so T = 1 reproduces USB and T = 0.5 does not."""
    def loss(T):
        alg = create_algorithm(algorithm, {"p_cutoff": 0.5, "hard_label": False, "T": T},
                               num_classes=3, num_iterations=10, num_ulb=3)
        out = Outputs(logits={"lb_weak": torch.tensor(LB), "ulb_weak": torch.tensor(WEAK),
                              "ulb_strong": torch.tensor(STRONG)}, feats={})
        return alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(Y),
                                           idx_ulb=torch.arange(3)), 0).loss.item()

    sup = sum(-log_softmax(z)[y] for z, y in zip(LB, Y, strict=True)) / len(LB)
    usb = sup + sum(  # USB: soft CE against the unsharpened p, masked (FlexMatch: all pass)
        -sum(p * log_softmax(zs)[k] for k, p in enumerate(softmax(zw)))
        for zw, zs in zip(WEAK, STRONG, strict=True)
        if algorithm == "flexmatch" or max(softmax(zw)) >= 0.5) / len(WEAK)
    assert loss(1.0) == pytest.approx(usb, rel=1e-6)
    assert loss(0.5) != pytest.approx(usb, rel=1e-3)


def test_fixmatch_no_gradient_through_pseudo_labels():
    weak = torch.tensor(WEAK, requires_grad=True)
    strong = torch.tensor(STRONG, requires_grad=True)
    alg = create_algorithm("fixmatch", {}, num_classes=3, num_iterations=10, num_ulb=3)
    out = Outputs(logits={"lb_weak": torch.tensor(LB), "ulb_weak": weak, "ulb_strong": strong},
                  feats={})
    alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(Y)), 0).loss.backward()
    assert weak.grad is None or torch.count_nonzero(weak.grad) == 0
    assert strong.grad[1].abs().sum() == 0  # the masked sample gets no gradient
    assert strong.grad[0].abs().sum() > 0
