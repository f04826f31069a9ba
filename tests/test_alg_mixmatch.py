"""MixMatch against values computed by hand from the paper/USB formula, its forward pass
(label guessing without gradients or batch-norm updates, interleaved chunks) and its params."""

import copy

import pytest
import torch

from semibench.algorithms import Batch, create_algorithm, make_params
from semibench.algorithms.base import DataInfo, Outputs
from semibench.algorithms.mixup import MixedOutputs, Mixing
from semibench.config import check_config, run_config
from tests.alg_helpers import log_softmax, softmax
from tests.helpers.nets import BNNet

LB_Y = [0, 2]
W1 = [[2.0, 0.0, -1.0], [0.0, 1.0, 0.5]]
W2 = [[1.0, 0.5, 0.0], [-1.0, 2.0, 0.0]]
LAM = 0.7
PERM = [3, 0, 5, 1, 2, 4]
MIXED = [[1.0, 0.0, 0.0], [0.0, 0.5, 1.5], [0.3, 0.2, -0.4],
         [2.0, -1.0, 0.0], [0.0, 0.0, 0.0], [-0.5, 1.0, 0.7]]


def make(num_iterations=100, **params):
    return create_algorithm("mixmatch", params, domain="image", num_classes=3,
                            num_iterations=num_iterations, num_ulb=2)


def fixed_outputs():
    return MixedOutputs(
        logits={"ulb_weak": torch.tensor(W1), "ulb_weak2": torch.tensor(W2),
                "mixed": torch.tensor(MIXED)},
        feats={}, mixing=Mixing(lam=LAM, perm=torch.tensor(PERM)))


def by_hand(T, lambda_u, iteration, num_iterations=100, warm_up=0.4):
    # label guess: mean of the two weak predictions, sharpened by p^(1/T) / sum
    guesses = []
    for z1, z2 in zip(W1, W2, strict=True):
        p = [(a + b) / 2 for a, b in zip(softmax(z1), softmax(z2), strict=True)]
        s = [v ** (1 / T) for v in p]
        guesses.append([v / sum(s) for v in s])
    targets = [[1.0 if k == y else 0.0 for k in range(3)] for y in LB_Y] + guesses + guesses
    mixed_t = [[LAM * targets[i][k] + (1 - LAM) * targets[PERM[i]][k] for k in range(3)]
               for i in range(6)]
    sup = 0.0
    for i in range(2):
        ls = log_softmax(MIXED[i])
        sup += -sum(mixed_t[i][k] * ls[k] for k in range(3))
    sup /= 2
    unsup = 0.0
    for i in range(2, 6):
        p = softmax(MIXED[i])
        unsup += sum((p[k] - mixed_t[i][k]) ** 2 for k in range(3)) / 3
    unsup /= 4
    ramp = min(iteration / (warm_up * num_iterations), 1.0)
    return sup + lambda_u * ramp * unsup, sup, unsup, guesses


@pytest.mark.parametrize("T, lambda_u, iteration", [(0.5, 10.0, 10), (0.25, 100.0, 30),
                                                     (1.0, 3.0, 0), (0.5, 10.0, 95)])
def test_loss_by_hand(T, lambda_u, iteration):
    alg = make(T=T, lambda_u=lambda_u)
    res = alg.compute_loss(fixed_outputs(), Batch(x_lb={}, y_lb=torch.tensor(LB_Y)), iteration)
    loss, sup, unsup, guesses = by_hand(T, lambda_u, iteration)
    assert res.loss.item() == pytest.approx(loss, rel=1e-5)
    assert res.log["sup_loss"] == pytest.approx(sup, rel=1e-5)
    assert res.log["unsup_loss"] == pytest.approx(unsup, rel=1e-5)
    assert res.mask.tolist() == [1.0, 1.0]
    assert res.pseudo_label.tolist() == [max(range(3), key=g.__getitem__) for g in guesses]


def test_ramp_over_steps():
    """The unsupervised weight rises linearly to lambda_u over 40 % of 100 iterations."""
    alg = make(lambda_u=10.0)
    batch = Batch(x_lb={}, y_lb=torch.tensor(LB_Y))
    for it, ramp in [(0, 0.0), (8, 0.2), (20, 0.5), (40, 1.0), (99, 1.0)]:
        res = alg.compute_loss(fixed_outputs(), batch, it)
        assert res.log["ramp"] == pytest.approx(ramp)
        weight = (res.loss.item() - res.log["sup_loss"]) / res.log["unsup_loss"]
        assert weight == pytest.approx(10.0 * ramp, abs=1e-4)


def test_gradients_reach_only_the_mixed_logits():
    out = fixed_outputs()
    for k in out.logits:
        out.logits[k].requires_grad_(True)
    make().compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(LB_Y)), 50).loss.backward()
    assert out.logits["mixed"].grad.abs().sum() > 0
    for k in ("ulb_weak", "ulb_weak2"):  # the label guess is a fixed target
        assert out.logits[k].grad is None or out.logits[k].grad.abs().sum() == 0


# ---------------------------------------------------------------------------- forward pass
def attached(domain="image", **params):
    alg = create_algorithm("mixmatch", params, domain=domain, num_classes=3, num_iterations=100,
                           num_ulb=3)
    alg.attach(None, None, DataInfo(domain=domain, num_classes=3, num_lb=3, num_ulb=3,
                                    lb_class_counts=torch.tensor([1, 1, 1])))
    return alg


def inputs():
    g = torch.Generator().manual_seed(7)
    return {k: torch.randn(3, 4, generator=g) for k in ("lb_weak", "ulb_weak", "ulb_weak2")}


def test_forward_input_mixup_bn_and_chunks():
    net, x = BNNet(h=5, seed=1), inputs()
    ref = copy.deepcopy(net)
    alg = attached()
    torch.manual_seed(0)
    out = alg.forward(net, x, cat=True)

    # label guessing: plain train-mode passes, no gradient
    for k in ("ulb_weak", "ulb_weak2"):
        assert not out.logits[k].requires_grad
        assert torch.allclose(out.logits[k], copy.deepcopy(ref)(x[k]), atol=1e-6)
    # the mixed inputs, forwarded in interleaved chunks of 3: [0, 4, 8], [3, 1, 5], [6, 7, 2]
    z = torch.cat([x["lb_weak"], x["ulb_weak"], x["ulb_weak2"]])
    lam, perm = out.mixing.lam, out.mixing.perm
    assert 0.5 <= lam <= 1.0
    mixed = torch.stack([lam * z[i] + (1 - lam) * z[int(perm[i])] for i in range(9)])
    probe, expected = copy.deepcopy(ref), torch.zeros(9, 3)
    for rows in ([0, 4, 8], [3, 1, 5], [6, 7, 2]):
        expected[rows] = probe(mixed[rows])
    assert torch.allclose(out.logits["mixed"], expected, atol=1e-5)
    # batch norm saw exactly one batch: the first interleaved chunk
    ref(mixed[[0, 4, 8]])
    assert all(torch.allclose(a.float(), b.float())
               for a, b in zip(net.bn_state(), ref.bn_state(), strict=True))
    # the whole step backpropagates (no in-place change of saved batch-norm buffers)
    res = alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor([0, 1, 2])), 60)
    res.loss.backward()
    assert net.body[0].weight.grad.abs().sum() > 0


def test_forward_is_reproducible_from_the_global_seed():
    net, x = BNNet(h=5, seed=1), inputs()
    alg = attached()
    torch.manual_seed(4)
    a = alg.forward(copy.deepcopy(net), x, cat=False)
    torch.manual_seed(4)
    b = alg.forward(copy.deepcopy(net), x, cat=False)
    assert a.mixing.lam == b.mixing.lam and torch.equal(a.mixing.perm, b.mixing.perm)
    assert torch.equal(a.logits["mixed"], b.logits["mixed"])


def test_forward_manifold_mixup_mixes_features_and_applies_the_head():
    net, x = BNNet(h=5, seed=1), inputs()
    ref = copy.deepcopy(net)
    alg = attached(domain="audio")
    assert alg.p.mixup_manifold
    torch.manual_seed(0)
    out = alg.forward(net, x, cat=False)
    feats = [copy.deepcopy(ref).forward_features(x[k]) for k in ("lb_weak", "ulb_weak",
                                                                   "ulb_weak2")]
    f = torch.cat(feats)
    lam, perm = out.mixing.lam, out.mixing.perm
    mixed = torch.stack([lam * f[i] + (1 - lam) * f[int(perm[i])] for i in range(9)])
    assert torch.allclose(out.logits["mixed"], ref.head(mixed), atol=1e-5)
    # only the labelled feature pass updated batch norm
    ref.forward_features(x["lb_weak"])
    assert all(torch.allclose(a.float(), b.float())
               for a, b in zip(net.bn_state(), ref.bn_state(), strict=True))
    res = alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor([0, 1, 2])), 60)
    res.loss.backward()
    assert net.body[0].weight.grad.abs().sum() > 0


def test_integer_inputs_need_manifold_mixup():
    x = {k: torch.zeros(3, 4, dtype=torch.long) for k in ("lb_weak", "ulb_weak", "ulb_weak2")}
    with pytest.raises(ValueError, match=r"algorithm_params\.mixmatch\.mixup_manifold"):
        attached(domain="image").forward(BNNet(h=5, seed=1), x, cat=False)
    with pytest.raises(ValueError, match=r"algorithm_params\.mixmatch\.mixup_manifold"):
        attached(domain="text", mixup_manifold=False)


# ---------------------------------------------------------------------------- params
def test_configured_value_beats_the_domain_default():
    # (USB's per-domain values themselves are pinned in test_usb_configs.py)
    assert make_params("mixmatch", {}, "text").lambda_u == 100.0
    assert make_params("mixmatch", {"lambda_u": 7.0}, "text").lambda_u == 7.0
    assert make_params("mixmatch", {"mixup_manifold": False}, "audio").mixup_manifold is False


def test_uratio_defaults_to_one_but_config_wins():
    def uratio(train):
        cfg = check_config({"algorithms": ["mixmatch"], "seeds": [0],
                            "tasks": {"mnist": {"num_labels": [40], "train": train}}})
        return run_config(cfg, "mnist", 40, "mixmatch", 0)["train"]["uratio"]

    assert uratio({}) == 1
    assert uratio({"uratio": 3}) == 3


def test_outputs_without_mixing_rejected():
    with pytest.raises(TypeError, match="MixedOutputs"):
        make().compute_loss(Outputs(logits={}, feats={}), Batch(x_lb={}, y_lb=torch.tensor([0])), 0)
