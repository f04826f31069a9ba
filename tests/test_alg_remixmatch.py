"""ReMixMatch against values computed by hand: distribution alignment to the labelled class
distribution (and its EMA state over steps), sharpening, mixup targets, the four loss terms
and their weights; its forward pass (batch norm, chunks, rotations) and its params."""

import copy

import pytest
import torch
from torch import nn

from semibench.algorithms import Batch, create_algorithm
from semibench.algorithms.base import DataInfo
from semibench.algorithms.mixup import Mixing
from semibench.algorithms.remixmatch import ReMixMatchOutputs
from tests.alg_helpers import log_softmax, softmax
from tests.helpers.nets import BNNet

COUNTS = [2, 1, 1]  # labelled samples per class -> p_target = [0.5, 0.25, 0.25]
LB_Y = [0, 2]
WEAK = [[2.0, 0.0, -1.0], [0.0, 1.0, 0.5]]
S0 = [[1.0, 0.5, 0.0], [-1.0, 2.0, 0.0]]
LAM = 0.8
PERM = [5, 0, 7, 1, 2, 3, 6, 4]
MIXED = [[1.0, 0.0, 0.0], [0.0, 0.5, 1.5], [0.3, 0.2, -0.4], [2.0, -1.0, 0.0],
         [0.0, 0.0, 0.0], [-0.5, 1.0, 0.7], [0.1, 0.9, -0.2], [1.2, 0.3, 0.4]]
ROT = [[0.5, 1.0, -0.5, 0.0], [0.0, 0.0, 2.0, 1.0]]
ROT_Y = [1, 3]


def attached(domain="image", num_iterations=128, **params):
    alg = create_algorithm("remixmatch", params, domain=domain, num_classes=3,
                           num_iterations=num_iterations, num_ulb=2)
    alg.attach(None, None, DataInfo(domain=domain, num_classes=3, num_lb=4, num_ulb=2,
                                    lb_class_counts=torch.tensor(COUNTS)))
    return alg


def outputs(weak=WEAK, rot=True):
    out = ReMixMatchOutputs(
        logits={"ulb_weak": torch.tensor(weak), "ulb_strong": torch.tensor(S0),
                "mixed": torch.tensor(MIXED)},
        feats={}, mixing=Mixing(lam=LAM, perm=torch.tensor(PERM)))
    if rot:
        out.logits["rot"] = torch.tensor(ROT)
        out.rot_labels = torch.tensor(ROT_Y)
    return out


def soft_ce(z, t):
    ls = log_softmax(z)
    return -sum(tk * lk for tk, lk in zip(t, ls, strict=True))


def aligned_guess(weak, p_model, T, p_target=None):
    p_target = p_target or [c / sum(COUNTS) for c in COUNTS]
    guesses = []
    for z in weak:
        p = softmax(z)
        a = [p[k] * (p_target[k] + 1e-6) / (p_model[k] + 1e-6) for k in range(3)]
        a = [v / sum(a) for v in a]
        s = [v ** (1 / T) for v in a]
        guesses.append([v / sum(s) for v in s])
    return guesses


def by_hand(p_model, T=0.5, lambda_u=1.5, lambda_kl=0.5, lambda_rot=0.5, ramp=1.0, weak=WEAK,
            p_target=None):
    q = aligned_guess(weak, p_model, T, p_target)
    targets = [[1.0 if k == y else 0.0 for k in range(3)] for y in LB_Y] + q + q + q
    mixed_t = [[LAM * targets[i][k] + (1 - LAM) * targets[PERM[i]][k] for k in range(3)]
               for i in range(8)]
    sup = sum(soft_ce(MIXED[i], mixed_t[i]) for i in range(2)) / 2
    unsup = sum(soft_ce(MIXED[i], mixed_t[i]) for i in range(2, 8)) / 6
    u1 = sum(soft_ce(S0[i], q[i]) for i in range(2)) / 2
    rot = sum(-log_softmax(ROT[i])[ROT_Y[i]] for i in range(2)) / 2
    loss = sup + lambda_kl * ramp * u1 + lambda_u * ramp * unsup + lambda_rot * rot
    return loss, {"sup_loss": sup, "unsup_loss": unsup, "u1_loss": u1, "rot_loss": rot}, q


def first_p_model(weak=WEAK):
    rows = [softmax(z) for z in weak]
    return [sum(r[k] for r in rows) / len(rows) for k in range(3)]


# num_iterations=128 and unsup_warm_up=1/64: the ramp reaches 1 after 2 iterations
@pytest.mark.parametrize("iteration, ramp", [(0, 0.0), (1, 0.5), (2, 1.0), (50, 1.0)])
def test_loss_by_hand_with_ramp(iteration, ramp):
    alg = attached()
    res = alg.compute_loss(outputs(), Batch(x_lb={}, y_lb=torch.tensor(LB_Y)), iteration)
    # the first batch initialises p_model to its mean prediction
    loss, parts, q = by_hand(first_p_model(), ramp=ramp)
    assert res.loss.item() == pytest.approx(loss, rel=1e-5)
    for k, v in parts.items():
        assert res.log[k] == pytest.approx(v, rel=1e-5)
    assert res.log["ramp"] == pytest.approx(ramp)
    assert res.mask.tolist() == [1.0, 1.0]
    assert res.pseudo_label.tolist() == [max(range(3), key=g.__getitem__) for g in q]


def test_loss_weights_and_temperature():
    alg = attached(T=0.25, lambda_u=3.0, lambda_kl=0.1, lambda_rot=2.0)
    res = alg.compute_loss(outputs(), Batch(x_lb={}, y_lb=torch.tensor(LB_Y)), 10)
    loss, _, _ = by_hand(first_p_model(), T=0.25, lambda_u=3.0, lambda_kl=0.1, lambda_rot=2.0)
    assert res.loss.item() == pytest.approx(loss, rel=1e-5)


def test_no_rotation_term_when_lambda_rot_is_zero():
    alg = attached(domain="text")  # USB: lambda_rot = 0 for text and audio
    assert alg.p.lambda_rot == 0.0 and alg.build_modules(8) == {}
    res = alg.compute_loss(outputs(rot=False), Batch(x_lb={}, y_lb=torch.tensor(LB_Y)), 10)
    loss, _, _ = by_hand(first_p_model(), lambda_rot=0.0)
    assert res.loss.item() == pytest.approx(loss, rel=1e-5)
    assert "rot_loss" not in res.log


def test_distribution_alignment_state_over_steps_and_checkpoint():
    """p_model starts at the first batch mean, then p_model <- m p_model + (1 - m) mean(p)."""
    m = 0.9
    batches = [WEAK, [[0.0, 0.0, 3.0], [1.0, 1.0, 0.0]], [[-1.0, 2.0, 0.5], [0.5, 0.5, 0.5]]]
    alg = attached(ema_p=m)
    y = Batch(x_lb={}, y_lb=torch.tensor(LB_Y))
    p_model = None
    for i, weak in enumerate(batches):
        mean = first_p_model(weak)
        p_model = mean if p_model is None else [m * a + (1 - m) * b
                                                for a, b in zip(p_model, mean, strict=True)]
        res = alg.compute_loss(outputs(weak=weak), y, 10 + i)
        state = alg.state_dict()["dist_align"]
        assert state["p_model"].tolist() == pytest.approx(p_model, rel=1e-6)
        assert state["p_target"].tolist() == pytest.approx([0.5, 0.25, 0.25])
        # the guess of this step was aligned with the updated p_model
        assert res.loss.item() == pytest.approx(by_hand(p_model, weak=weak)[0], rel=1e-5)

    # a fresh algorithm restored from the state continues identically
    other = attached(ema_p=m)
    other.load_state_dict(copy.deepcopy(alg.state_dict()))
    nxt = [[0.3, -0.2, 0.1], [2.0, 0.0, 0.0]]
    a = alg.compute_loss(outputs(weak=nxt), y, 20)
    b = other.compute_loss(outputs(weak=nxt), y, 20)
    assert a.loss.item() == b.loss.item()
    assert torch.equal(alg.state_dict()["dist_align"]["p_model"],
                       other.state_dict()["dist_align"]["p_model"])


def test_uniform_distribution_alignment_target_by_hand():
    """dist_align_target: uniform (what USB's classic_cv_imb configs write) aligns to 1/C:
    p = [.5, .3, .2] and [.1, .6, .3] give p_model = [.3, .45, .25] (the first batch), and
    p * (1/3) / p_model, normalised, is [25, 10, 12] / 47 and [5, 20, 18] / 43 (the labelled
    target [.5, .25, .25] would give other values)."""
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    uniform = attached(dist_align_target="uniform")
    assert uniform.dist_align.p_target.tolist() == pytest.approx([1 / 3] * 3)
    aligned = uniform.dist_align(probs)
    assert aligned.tolist()[0] == pytest.approx([25 / 47, 10 / 47, 12 / 47], rel=1e-5)
    assert aligned.tolist()[1] == pytest.approx([5 / 43, 20 / 43, 18 / 43], rel=1e-5)
    labelled = attached().dist_align(probs)
    assert labelled.tolist()[0] != pytest.approx(aligned.tolist()[0], rel=1e-3)

    # the loss takes the uniformly aligned, sharpened guess
    alg = attached(dist_align_target="uniform")
    res = alg.compute_loss(outputs(), Batch(x_lb={}, y_lb=torch.tensor(LB_Y)), 10)
    loss, parts, q = by_hand(first_p_model(), p_target=[1 / 3] * 3)
    assert res.loss.item() == pytest.approx(loss, rel=1e-5)
    assert res.log["u1_loss"] == pytest.approx(parts["u1_loss"], rel=1e-5)
    assert loss != pytest.approx(by_hand(first_p_model())[0], rel=1e-4)
    assert alg.state_dict()["dist_align"]["p_target"].tolist() == pytest.approx([1 / 3] * 3)


def test_dist_align_target_choices():
    assert attached().p.dist_align_target == "labelled"  # USB's code: the labelled distribution
    with pytest.raises(ValueError, match="dist_align_target"):
        attached(dist_align_target="gt")


def test_gradients_do_not_flow_into_the_guess():
    out = outputs()
    for k in out.logits:
        out.logits[k].requires_grad_(True)
    attached().compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(LB_Y)), 10).loss.backward()
    assert out.logits["ulb_weak"].grad is None or out.logits["ulb_weak"].grad.abs().sum() == 0
    for k in ("mixed", "ulb_strong", "rot"):
        assert out.logits[k].grad.abs().sum() > 0


# ---------------------------------------------------------------------------- forward pass
def image_inputs():
    g = torch.Generator().manual_seed(7)
    return {k: torch.randn(3, 1, 2, 2, generator=g)
            for k in ("lb_weak", "ulb_weak", "ulb_strong", "ulb_strong2")}


def with_heads(net, alg):
    net.ssl_heads = nn.ModuleDict(alg.build_modules(net.num_features))
    return net


def test_forward_bn_chunks_and_rotation():
    alg = attached()
    net = with_heads(BNNet(h=5, seed=1, flatten=True), alg)
    assert isinstance(net.ssl_heads["rot"], nn.Linear) and net.ssl_heads["rot"].out_features == 4
    ref, x = copy.deepcopy(net), image_inputs()
    torch.manual_seed(0)
    out = alg.forward(net, x, cat=True)

    assert not out.logits["ulb_weak"].requires_grad
    assert torch.allclose(out.logits["ulb_weak"], copy.deepcopy(ref)(x["ulb_weak"]), atol=1e-6)
    assert out.logits["ulb_strong"].requires_grad
    assert torch.allclose(out.logits["ulb_strong"], copy.deepcopy(ref)(x["ulb_strong"]),
                          atol=1e-6)

    # mixup over cat(x, s0, s1, weak); 4 chunks of 3 rows with slices of sizes 0, 1, 1, 1:
    # chunk 0 -> rows 3, 7, 11; chunk 1 -> 0, 4, 5; chunk 2 -> 6, 1, 8; chunk 3 -> 9, 10, 2
    z = torch.cat([x["lb_weak"], x["ulb_strong"], x["ulb_strong2"], x["ulb_weak"]])
    lam, perm = out.mixing.lam, out.mixing.perm
    mixed = torch.stack([lam * z[i] + (1 - lam) * z[int(perm[i])] for i in range(12)])
    groups = ([3, 7, 11], [0, 4, 5], [6, 1, 8], [9, 10, 2])
    probe, expected = copy.deepcopy(ref), torch.zeros(12, 3)
    for rows in groups:
        expected[rows] = probe(mixed[rows])
    assert torch.allclose(out.logits["mixed"], expected, atol=1e-5)

    # rotation of strong view 0 by r * 90 degrees, each sample on its own
    r = out.rot_labels
    assert r.shape == (3,) and all(0 <= int(v) <= 3 for v in r)
    rotated = torch.stack([torch.rot90(x["ulb_strong"][i], int(r[i]), dims=(1, 2))
                           for i in range(3)])
    probe = copy.deepcopy(ref)
    assert torch.allclose(out.logits["rot"], probe.ssl_heads["rot"](probe.forward_features(rotated)),
                          atol=1e-6)

    # batch norm saw exactly one batch: the first interleaved mixed chunk
    ref(mixed[list(groups[0])])
    assert all(torch.allclose(a.float(), b.float())
               for a, b in zip(net.bn_state(), ref.bn_state(), strict=True))
    res = alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor([0, 1, 2])), 60)
    res.loss.backward()
    assert net.body[1].weight.grad.abs().sum() > 0
    assert net.ssl_heads["rot"].weight.grad.abs().sum() > 0
    assert set(res.log) == {"sup_loss", "unsup_loss", "u1_loss", "rot_loss", "ramp"}


def test_rotations_vary_per_sample():
    alg = attached()
    net = with_heads(BNNet(h=5, seed=1, flatten=True), alg)
    x = {k: torch.randn(64, 1, 2, 2) for k in ("lb_weak", "ulb_weak", "ulb_strong",
                                               "ulb_strong2")}
    torch.manual_seed(0)
    r = alg.forward(net, x, cat=False).rot_labels
    assert set(r.tolist()) == {0, 1, 2, 3}


def test_forward_manifold_mixup():
    alg = attached(domain="audio")
    assert alg.p.mixup_manifold and alg.p.lambda_rot == 0.0
    net = BNNet(h=5, seed=1, flatten=True)
    ref, x = copy.deepcopy(net), image_inputs()
    torch.manual_seed(0)
    out = alg.forward(net, x, cat=False)
    f = torch.cat([copy.deepcopy(ref).forward_features(x[k])
                   for k in ("lb_weak", "ulb_strong", "ulb_strong2", "ulb_weak")])
    lam, perm = out.mixing.lam, out.mixing.perm
    mixed = torch.stack([lam * f[i] + (1 - lam) * f[int(perm[i])] for i in range(12)])
    assert torch.allclose(out.logits["mixed"], ref.head(mixed), atol=1e-5)
    assert "rot" not in out.logits
    ref.forward_features(x["lb_weak"])  # only the labelled feature pass updates batch norm
    assert all(torch.allclose(a.float(), b.float())
               for a, b in zip(net.bn_state(), ref.bn_state(), strict=True))
    alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor([0, 1, 2])), 60).loss.backward()


# ---------------------------------------------------------------------------- params
def test_rotation_only_for_images():
    with pytest.raises(ValueError, match=r"algorithm_params\.remixmatch\.lambda_rot"):
        attached(domain="audio", lambda_rot=0.5)
    with pytest.raises(ValueError, match=r"algorithm_params\.remixmatch\.mixup_manifold"):
        attached(domain="text", mixup_manifold=False)


def test_state_needs_attach():
    alg = create_algorithm("remixmatch", {}, num_classes=3, num_iterations=10, num_ulb=2)
    with pytest.raises(RuntimeError, match="attach"):
        alg.compute_loss(outputs(), Batch(x_lb={}, y_lb=torch.tensor(LB_Y)), 0)
    with pytest.raises(ValueError, match="distribution alignment"):
        alg.load_state_dict({"dist_align": None})
