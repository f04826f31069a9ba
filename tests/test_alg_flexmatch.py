"""FlexMatch's loss against values computed by hand from the paper's formula."""

import pytest
import torch

from semibench.algorithms import Batch, Outputs, create_algorithm
from tests.alg_helpers import ce, softmax

LB = [[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]]
Y = [0, 2]
WEAK = [[4.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 5.0]]
STRONG = [[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.5, -1.0, 2.0]]


def make(**params):
    return create_algorithm("flexmatch", params, num_classes=3, num_iterations=10, num_ulb=3)


def step(alg, it=0):
    out = Outputs(logits={"lb_weak": torch.tensor(LB), "ulb_weak": torch.tensor(WEAK),
                          "ulb_strong": torch.tensor(STRONG)}, feats={})
    return alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(Y), idx_ulb=torch.arange(3)),
                            it)


def expected_loss(mask, lambda_u=1.0, hard=True, T=0.5):
    sup = sum(ce(z, y) for z, y in zip(LB, Y, strict=True)) / len(LB)
    unsup = 0.0
    for m, zw, zs in zip(mask, WEAK, STRONG, strict=True):
        p = softmax(zw)
        if hard:
            target = p.index(max(p))
        else:
            sharp = [v ** (1 / T) for v in p]
            target = [v / sum(sharp) for v in sharp]
        unsup += m * ce(zs, target)
    return sup + lambda_u * unsup / len(WEAK)  # divided by the batch, not the mask sum


def test_first_step_every_sample_passes():
    """beta = 0 at the start, so every threshold is 0: even max p = 0.576 is used."""
    res = step(make())
    assert res.mask.tolist() == [1.0, 1.0, 1.0]
    assert res.pseudo_label.tolist() == [0, 0, 2]
    assert res.loss.item() == pytest.approx(expected_loss([1, 1, 1]), rel=1e-6)
    assert res.log["threshold_mean"] == 0.0


def test_thresholds_rise_after_selection():
    alg = make(p_cutoff=0.95, lambda_u=2.0)
    step(alg)
    # sample 0 (max p 0.9647) was selected as class 0, sample 2 (0.9867) as class 2,
    # sample 1 (0.576) never: counts {unused: 1, 0: 1, 2: 1} -> beta = (1, 0, 1)
    assert alg.state_dict()["selected_label"].tolist() == [0, -1, 2]
    assert alg.state_dict()["classwise_acc"].tolist() == [1.0, 0.0, 1.0]
    res = step(alg, 1)
    # class 0 now needs 0.95 * 1 / (2 - 1) = 0.95: sample 1 (0.576) is masked out
    assert res.mask.tolist() == [1.0, 0.0, 1.0]
    assert res.loss.item() == pytest.approx(expected_loss([1, 0, 1], lambda_u=2.0), rel=1e-6)


def test_soft_sharpened_labels():
    res = step(make(hard_label=False, T=0.5))
    expected = expected_loss([1, 1, 1], hard=False, T=0.5)
    assert res.loss.item() == pytest.approx(expected, rel=1e-6)


def test_needs_unlabelled_indices():
    out = Outputs(logits={"lb_weak": torch.tensor(LB), "ulb_weak": torch.tensor(WEAK),
                          "ulb_strong": torch.tensor(STRONG)}, feats={})
    with pytest.raises(ValueError, match="idx_ulb"):
        make().compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(Y)), 0)
