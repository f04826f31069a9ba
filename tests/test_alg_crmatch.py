"""CRMatch against values computed by hand (explicit loops), its rotation views, where its
gradients go, and its parameter checks."""

import math

import pytest
import torch
from torch import nn

from semibench.algorithms import Batch, Outputs, create_algorithm, make_params
from semibench.algorithms.base import DataInfo
from tests.alg_helpers import cosine, softmax

C = 3
LB = [[2.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
Y = [0, 1]
WEAK = [[5.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 4.0]]
STRONG = [[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.5, -1.0, 2.0]]
H_W = [[1.0, 0.5], [0.2, -1.0], [-0.7, 0.3]]
H_S = [[0.8, 0.9], [1.0, 1.0], [0.6, -0.4]]
H_ROT = [[0.1, 0.2], [1.0, -1.0], [0.3, 0.3], [-0.5, 0.2],
         [0.0, 1.0], [0.7, 0.1], [-1.0, -0.2], [0.4, -0.9]]
DS_W, DS_B = [[1.0, 0.5], [-0.3, 1.0]], [0.1, -0.2]
ROT_W = [[0.5, -0.2], [0.1, 0.4], [-0.3, 0.2], [0.2, 0.1]]
ROT_B = [0.0, 0.1, -0.1, 0.05]


def linear(weight, bias):
    layer = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias))
    return layer


class Toy(nn.Module):
    """Pooled features = the flattened input; logits = zeros (only the heads matter here)."""

    def __init__(self, with_rot=True):
        super().__init__()
        heads = {"ds": linear(DS_W, DS_B)}
        if with_rot:
            heads["rot"] = linear(ROT_W, ROT_B)
        self.ssl_heads = nn.ModuleDict(heads)

    def forward_features(self, x):
        return x.flatten(1).float()

    def forward_head(self, f):
        return torch.zeros(len(f), C)


def make(params=None, domain="image", with_rot=True):
    alg = create_algorithm("crmatch", params or {}, domain=domain, num_classes=C,
                           num_iterations=10, num_ulb=3)
    alg.attach(Toy(with_rot), None, DataInfo(domain=domain, num_classes=C, num_lb=2, num_ulb=3,
                                             lb_class_counts=torch.tensor([1, 1, 0])))
    return alg


def outputs(rot=True):
    feats = {"lb_weak": torch.zeros(2, 2), "ulb_weak": torch.tensor(H_W),
             "ulb_strong": torch.tensor(H_S)}
    if rot:
        feats["rot"] = torch.tensor(H_ROT)
    return Outputs(logits={"lb_weak": torch.tensor(LB), "ulb_weak": torch.tensor(WEAK),
                           "ulb_strong": torch.tensor(STRONG)}, feats=feats)


# ----------------------------------------------------------------------------- by hand
def affine(w, b, x):
    return [sum(w[i][j] * x[j] for j in range(len(x))) + b[i] for i in range(len(w))]


def hand(p_cutoff=0.95, lambda_u=1.0, lambda_ds=1.0, rot_ratio=1.0):
    sup = sum(-math.log(softmax(z)[y]) for z, y in zip(LB, Y, strict=True)) / len(LB)
    unsup, ds, mask = 0.0, 0.0, []
    for b in range(len(WEAK)):
        p = softmax(WEAK[b])
        m = 1.0 if max(p) >= p_cutoff else 0.0
        y_hat = p.index(max(p))
        unsup += m * -math.log(softmax(STRONG[b])[y_hat]) / len(WEAK)
        cos = cosine(affine(DS_W, DS_B, H_S[b]), affine(DS_W, DS_B, H_W[b]))
        ds += m * max(0.0, cos) / len(WEAK)
        mask.append(m)
    n = len(H_ROT) // 4
    rot = 0.0
    for i, h in enumerate(H_ROT):
        r = i // n  # n images at 0 degrees, then n at 90, ...
        rot += -math.log(softmax(affine(ROT_W, ROT_B, h))[r]) / len(H_ROT)
    return {"loss": sup + lambda_u * unsup + lambda_ds * ds + rot_ratio * rot, "sup": sup,
            "unsup": unsup, "ds": ds, "rot": rot, "mask": mask}


# ----------------------------------------------------------------------------- loss
@pytest.mark.parametrize("params", [{}, {"lambda_u": 2.0, "lambda_ds": 0.5, "rot_loss_ratio": 0.3},
                                    {"p_cutoff": 0.5}])
def test_crmatch_loss_by_hand(params):
    res = make(params).compute_loss(outputs(), Batch(x_lb={}, y_lb=torch.tensor(Y)), 0)
    exp = hand(params.get("p_cutoff", 0.95), params.get("lambda_u", 1.0),
               params.get("lambda_ds", 1.0), params.get("rot_loss_ratio", 1.0))
    assert res.log["sup_loss"] == pytest.approx(exp["sup"], rel=1e-5)
    assert res.log["unsup_loss"] == pytest.approx(exp["unsup"], rel=1e-5)
    assert res.log["ds_loss"] == pytest.approx(exp["ds"], rel=1e-5)
    assert res.log["rot_loss"] == pytest.approx(exp["rot"], rel=1e-5)
    assert res.loss.item() == pytest.approx(exp["loss"], rel=1e-5)
    assert res.mask.tolist() == exp["mask"]


def test_crmatch_feature_loss_is_hinged_at_zero():
    # sample 0 passes the mask and its ds embeddings point the same way (cos > 0) ...
    assert hand()["mask"] == [1.0, 0.0, 1.0]
    cos = [cosine(affine(DS_W, DS_B, s), affine(DS_W, DS_B, w)) for s, w in zip(H_S, H_W,
                                                                               strict=True)]
    # ... sample 2 passes too but is dissimilar (cos < 0): it adds 0
    assert cos[0] > 0 and cos[2] < 0
    res = make().compute_loss(outputs(), Batch(x_lb={}, y_lb=torch.tensor(Y)), 0)
    assert res.log["ds_loss"] == pytest.approx(cos[0] / 3, rel=1e-5)


def test_crmatch_without_rotation_for_text():
    assert make_params("crmatch", {}, "text").rot_loss_ratio == 0.0
    assert make_params("crmatch", {}, "audio").rot_loss_ratio == 0.0
    assert make_params("crmatch", {}, "image").rot_loss_ratio == 1.0
    alg = make(domain="text", with_rot=False)
    assert set(alg.build_modules(2)) == {"ds"}
    res = alg.compute_loss(outputs(rot=False), Batch(x_lb={}, y_lb=torch.tensor(Y)), 0)
    assert "rot_loss" not in res.log
    exp = hand(rot_ratio=0.0)
    assert res.loss.item() == pytest.approx(exp["loss"], rel=1e-5)


def test_crmatch_rotation_needs_images():
    alg = create_algorithm("crmatch", {"rot_loss_ratio": 1.0}, domain="text", num_classes=C,
                           num_iterations=10, num_ulb=3)
    with pytest.raises(ValueError, match=r"algorithm_params\.crmatch\.rot_loss_ratio=1\.0"):
        alg.attach(Toy(), None, DataInfo(domain="text", num_classes=C, num_lb=2, num_ulb=3,
                                         lb_class_counts=torch.tensor([1, 1, 0])))


# ----------------------------------------------------------------------------- views
def test_crmatch_forward_rotates_the_first_batch_size_weak_images_four_ways():
    alg = make()
    images = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[5.0, 6.0], [7.0, 8.0]]],
                           [[[9.0, 9.0], [9.0, 9.0]]]])
    x = {"lb_weak": torch.zeros(2, 1, 2, 2), "ulb_weak": images, "ulb_strong": images}
    out = alg.forward(alg.model, x, cat=True)
    # [[a, b], [c, d]] turned by 90 degrees (counter-clockwise) is [[b, d], [a, c]]
    expected = [[1, 2, 3, 4], [5, 6, 7, 8],          # 0 degrees: the first 2 images
                [2, 4, 1, 3], [6, 8, 5, 7],          # 90
                [4, 3, 2, 1], [8, 7, 6, 5],          # 180
                [3, 1, 4, 2], [7, 5, 8, 6]]          # 270
    assert out.feats["rot"].tolist() == expected
    no_rot = make({"rot_loss_ratio": 0.0}, with_rot=False)
    assert "rot" not in no_rot.forward(no_rot.model, x, cat=True).feats


def test_crmatch_rotation_rejects_non_square_images():
    alg = make()
    x = {"lb_weak": torch.zeros(1, 1, 2, 3), "ulb_weak": torch.zeros(2, 1, 2, 3)}
    with pytest.raises(ValueError, match="square"):
        alg.forward(alg.model, x, cat=True)


def test_crmatch_weak_view_has_gradients_through_the_feature_loss_only():
    assert make().target_views == frozenset()
    out = outputs()
    out.feats["ulb_weak"].requires_grad_(True)
    out.logits["ulb_weak"].requires_grad_(True)
    make().compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(Y)), 0).loss.backward()
    assert out.logits["ulb_weak"].grad is None  # pseudo-labels are detached
    grad = out.feats["ulb_weak"].grad
    assert grad[0].abs().sum() > 0  # masked in, cos > 0
    assert grad[1].abs().sum() == 0 and grad[2].abs().sum() == 0  # masked out / hinge at 0
