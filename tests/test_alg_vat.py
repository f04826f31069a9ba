"""VAT: the power iteration and loss of a linear model against values computed by hand, no
leak of the power iteration into the parameter gradients, embedding perturbation for text,
float32 under autocast, batch-norm freezing and parameter checks."""

import copy
import math

import pytest
import torch
from torch import nn

from semibench.algorithms import Batch, Outputs, create_algorithm
from semibench.backbones.base import Backbone
from tests.alg_helpers import ce, softmax, unit
from tests.helpers.nets import BNNet


def kl_row(p, z):
    q = softmax(z)
    return sum(a * (math.log(a) - math.log(b)) for a, b in zip(p, q, strict=True))


def entropy_row(p):
    return -sum(a * math.log(a) for a in p)


W = [[1.0, -0.5], [0.3, 0.8], [-1.2, 0.4]]
B = [0.1, -0.2, 0.0]
X_LB, Y = [[1.0, 0.0], [0.0, 1.0]], [0, 2]
X_ULB = [[0.5, -1.0], [2.0, 0.3], [-0.7, 0.8]]


def linear(x):
    return [sum(w * a for w, a in zip(row, x, strict=True)) + b for row, b in zip(W, B, strict=True)]


class LinearNet(Backbone):
    """logits = W x + b on 2-D inputs; no noise, so VAT is fully determined by its d0 draw."""

    def __init__(self):
        super().__init__()
        self.num_features = 2
        self.head = nn.Linear(2, 3)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor(W))
            self.head.bias.copy_(torch.tensor(B))

    def forward_features(self, x):
        return x


class TokenNet(Backbone):
    """Text-like: token ids -> embeddings -> masked mean (pad id 0) -> head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(10, 4)
        self.num_features = 4
        self.head = nn.Linear(4, 3)

    def embed(self, ids):
        return self.emb(ids)

    def forward_embedded(self, e, ids):
        mask = (ids != 0).to(e.dtype).unsqueeze(-1)
        return (e * mask).sum(1) / mask.sum(1)

    def forward_features(self, ids):
        return self.forward_embedded(self.embed(ids), ids)


def make(num_iterations=10, **params):
    return create_algorithm("vat", params, num_classes=3, num_iterations=num_iterations,
                            num_ulb=3)


def hand_vat(xi, eps, d0):
    """The adversarial logits of every unlabelled sample, by the definition (and r_adv)."""
    out, perturbations = [], []
    for x, d in zip(X_ULB, d0, strict=True):
        q = softmax(linear(x))
        probe = [xi * a for a in unit(d)]
        p = softmax(linear([a + b for a, b in zip(x, probe, strict=True)]))
        # grad_d KL(q || softmax(W (x + d) + b)) = W^T (p - q)
        g = [sum(W[c][j] * (p[c] - q[c]) for c in range(3)) for j in range(2)]
        r = [eps * a for a in unit(g)]
        out.append(linear([a + b for a, b in zip(x, r, strict=True)]))
        perturbations.append(r)
    return out, perturbations


def test_power_iteration_and_loss_by_hand():
    alg = make(lambda_u=2.0, xi=0.5, vat_eps=2.0)
    model = LinearNet().train()
    x = {"lb_weak": torch.tensor(X_LB), "ulb_weak": torch.tensor(X_ULB)}
    torch.manual_seed(0)
    out = alg.forward(model, x, cat=True)
    torch.manual_seed(0)
    d0 = torch.randn(3, 2).tolist()  # VAT's d0 ~ N(0, I), drawn on the CPU generator

    adv, _ = hand_vat(0.5, 2.0, d0)
    for got, want in zip(out.logits["ulb_adv"].tolist(), adv, strict=True):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-5)

    res = alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(Y)), iteration=2)
    sup = sum(ce(linear(xl), y) for xl, y in zip(X_LB, Y, strict=True)) / 2
    q = [softmax(linear(xu)) for xu in X_ULB]
    vat = sum(kl_row(qi, zi) for qi, zi in zip(q, adv, strict=True)) / 3
    ent = sum(entropy_row(qi) for qi in q) / 3
    ramp = 2 / (0.4 * 10)
    assert res.log["unsup_loss"] == pytest.approx(vat, rel=1e-4)
    assert res.log["ent_loss"] == pytest.approx(ent, rel=1e-5)
    assert res.loss.item() == pytest.approx(sup + 2.0 * ramp * vat + 0.06 * ent, rel=1e-5)


def test_power_iteration_does_not_leak_into_parameter_gradients():
    alg = make(xi=0.5, vat_eps=2.0, unsup_warm_up=0.0)
    model = LinearNet().train()
    x = {"lb_weak": torch.tensor(X_LB), "ulb_weak": torch.tensor(X_ULB)}
    torch.manual_seed(0)
    out = alg.forward(model, x, cat=True)
    assert all(p.grad is None for p in model.parameters())
    alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(Y)), 0).loss.backward()

    # the same loss rebuilt with the perturbation as a constant gives the same gradient
    torch.manual_seed(0)
    d0 = torch.randn(3, 2).tolist()
    r = torch.tensor(hand_vat(0.5, 2.0, d0)[1])
    x_ulb = torch.tensor(X_ULB)
    ref = copy.deepcopy(LinearNet())
    clean = ref.head(x_ulb)
    target = torch.softmax(clean.detach(), dim=-1)
    lds = (target * (target.log() - torch.log_softmax(ref.head(x_ulb + r), -1))).sum(-1).mean()
    p = torch.softmax(clean, dim=-1)
    loss = (nn.functional.cross_entropy(ref.head(torch.tensor(X_LB)), torch.tensor(Y)) + lds
            - 0.06 * (p * p.log()).sum(-1).mean())
    loss.backward()
    assert torch.allclose(model.head.weight.grad, ref.head.weight.grad, atol=1e-5)
    assert torch.allclose(model.head.bias.grad, ref.head.bias.grad, atol=1e-5)


def test_text_perturbs_the_token_embeddings():
    alg = make(xi=0.1, vat_eps=3.0)
    model = TokenNet().train()
    ids = torch.tensor([[1, 4, 5, 0], [2, 2, 7, 9], [3, 0, 0, 0]])
    e = model.embed(ids).detach()
    target = torch.softmax(model(ids), dim=-1).detach()
    r = alg.adversarial_perturbation(model, e, ids, target)
    assert r.shape == e.shape
    assert r.flatten(1).norm(dim=1).tolist() == pytest.approx([3.0] * 3, rel=1e-5)
    assert all(p.grad is None for p in model.parameters())

    x = {"lb_weak": ids[:2], "ulb_weak": ids}
    torch.manual_seed(3)
    out = alg.forward(model, x, cat=True)
    torch.manual_seed(3)
    r = alg.adversarial_perturbation(model, e, ids, torch.softmax(out.logits["ulb_weak"], -1))
    want = model.forward_head(model.forward_embedded(e + r, ids))
    assert torch.allclose(out.logits["ulb_adv"], want, atol=1e-6)
    alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor([0, 1])), 9).loss.backward()
    assert model.emb.weight.grad.abs().sum() > 0  # through the clean embeddings


def test_power_iteration_runs_in_float32_under_autocast():
    alg = make()  # USB's xi = 1e-6 would vanish in bfloat16
    model = LinearNet().train()
    e = torch.tensor(X_ULB)
    target = torch.softmax(model(e), dim=-1).detach()
    torch.manual_seed(0)
    plain = alg.adversarial_perturbation(model, e, e, target)
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = alg.adversarial_perturbation(model, e, e, target)
    assert mixed.dtype == torch.float32
    assert torch.equal(plain, mixed)


def test_unlabelled_passes_do_not_update_bn_statistics():
    model = BNNet().train()
    labelled_only = copy.deepcopy(model)
    torch.manual_seed(1)
    x = {"lb_weak": torch.randn(5, 4), "ulb_weak": torch.randn(6, 4) * 2.0 + 1.0}
    out = make().forward(model, x, cat=True)
    labelled_only(x["lb_weak"])
    bn, ref = model.body[1], labelled_only.body[1]
    assert torch.equal(bn.running_mean, ref.running_mean)
    assert torch.equal(bn.running_var, ref.running_var)
    assert int(bn.num_batches_tracked) == 1
    assert torch.allclose(out.logits["ulb_weak"], copy.deepcopy(labelled_only)(x["ulb_weak"]),
                          atol=1e-6)
    batch = Batch(x_lb={}, y_lb=torch.zeros(5, dtype=torch.long))
    make(unsup_warm_up=0.0).compute_loss(out, batch, 0).loss.backward()
    assert model.body[0].weight.grad.abs().sum() > 0


def test_ramp_weights_only_the_vat_term():
    alg = make(num_iterations=100, lambda_u=1.5, unsup_warm_up=0.4)
    lb, ulb, adv = [[1.0, 0.0, 0.0]], [[2.0, 0.0, -1.0], [0.0, 0.5, 0.5]], [[0.0, 1.0, 0.0],
                                                                            [1.0, 0.0, 2.0]]
    out = Outputs(logits={"lb_weak": torch.tensor(lb), "ulb_weak": torch.tensor(ulb),
                          "ulb_adv": torch.tensor(adv)}, feats={})
    sup = ce(lb[0], 0)
    q = [softmax(z) for z in ulb]
    vat = sum(kl_row(qi, zi) for qi, zi in zip(q, adv, strict=True)) / 2
    ent = sum(entropy_row(qi) for qi in q) / 2
    for it in [0, 10, 20, 39, 40, 80]:
        res = alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor([0])), it)
        ramp = min(it / 40, 1.0)
        assert res.loss.item() == pytest.approx(sup + 1.5 * ramp * vat + 0.06 * ent, rel=1e-6)
