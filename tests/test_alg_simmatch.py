"""SimMatch against values computed by hand from the paper's formulas (explicit loops over
samples, bank slots and classes), its bank and alignment-queue updates over several steps,
and its parameter checks."""

import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semibench.algorithms import Batch, Outputs, create_algorithm, make_params
from semibench.algorithms.base import DataInfo
from tests.alg_helpers import deg, dot, softmax, unit

C = 3
LB_COUNTS = [2, 1, 1]  # bank slots 0, 1 -> class 0; 2 -> class 1; 3 -> class 2


BANK = [deg(0), deg(30), deg(120), deg(240)]
BANK_LABELS = [0, 0, 1, 2]
F_W = [deg(10, 2.0), deg(125, 0.5), deg(250, 3.0)]  # pooled features (not unit: projection
F_S = [deg(20, 1.5), deg(100, 1.0), deg(200, 0.7)]  # normalises them)
F_LB = [deg(45), deg(60, 2.0)]
Y = [0, 1]
LB = [[2.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
WEAK = [[6.0, 0.0, 0.0], [0.0, 4.0, 0.5], [0.2, 0.1, 0.3]]
STRONG = [[1.0, 2.0, 0.0], [0.0, 1.0, -1.0], [0.5, -1.0, 2.0]]


class Unit(nn.Module):
    """A projection head that only normalises: the test fixes the embeddings."""

    def forward(self, x):
        return F.normalize(x, dim=-1)


class Toy(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale
        self.ssl_heads = nn.ModuleDict({"proj": Unit()})

    def forward_features(self, x):
        self.ran_in_train_mode = self.training
        return x * self.scale


def make(params=None, model=None, ema_model=None, domain="image"):
    alg = create_algorithm("simmatch", {"p_cutoff": 0.7, "bank_warmup": 0, **(params or {})},
                           domain=domain, num_classes=C, num_iterations=100, num_ulb=3)
    alg.attach(model or Toy(), ema_model,
               DataInfo(domain=domain, num_classes=C, num_lb=4, num_ulb=3,
                        lb_class_counts=torch.tensor(LB_COUNTS)))
    alg.bank.feats = torch.tensor(BANK)
    return alg


def outputs(weak=WEAK, strong=STRONG, f_w=F_W, f_s=F_S, f_lb=F_LB):
    return Outputs(
        logits={"lb_weak": torch.tensor(LB), "ulb_weak": torch.tensor(weak),
                "ulb_strong": torch.tensor(strong)},
        feats={"lb_weak": torch.tensor(f_lb), "ulb_weak": torch.tensor(f_w),
               "ulb_strong": torch.tensor(f_s)},
    )


def batch(idx_lb=None):
    b = Batch(x_lb={"weak": torch.tensor(F_LB)}, y_lb=torch.tensor(Y), idx_ulb=torch.arange(3))
    if idx_lb is not None:
        b.idx_lb = torch.tensor(idx_lb)
    return b


# ----------------------------------------------------------------------------- by hand
def aligned(probs, history):
    """DA with a uniform target: p * (1/C) / p_model, p_model = mean of the batch means seen."""
    p_model = [sum(h[c] for h in history) / len(history) for c in range(C)]
    out = []
    for p in probs:
        q = [p[c] * (1 / C + 1e-6) / (p_model[c] + 1e-6) for c in range(C)]
        out.append([v / sum(q) for v in q])
    return out


def assert_rows(actual, expected, tol=1e-6):
    actual = actual.tolist()
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert a == pytest.approx(e, abs=tol)


def batch_mean(probs):
    return [sum(p[c] for p in probs) / len(probs) for c in range(C)]


def hand(T, alpha, p_cutoff, lambda_u, lambda_in, warm, history, bank=BANK, labels=BANK_LABELS,
         weak=WEAK, strong=STRONG):
    sup = sum(-math.log(softmax(z)[y]) for z, y in zip(LB, Y, strict=True)) / len(LB)
    probs = [softmax(z) for z in weak]
    p_hat = aligned(probs, history + [batch_mean(probs)])
    unsup, in_loss, mask, targets = 0.0, 0.0, [], []
    for b in range(len(weak)):
        fw, fs = unit(F_W[b]), unit(F_S[b])
        t0 = softmax([dot(fw, bank[k]) / T for k in range(len(bank))])
        unfolded = [t0[k] * p_hat[b][labels[k]] for k in range(len(bank))]
        t = [u / sum(unfolded) for u in unfolded]
        agg = [sum(t0[k] for k in range(len(bank)) if labels[k] == c) for c in range(C)]
        p = p_hat[b] if warm else [alpha * p_hat[b][c] + (1 - alpha) * agg[c] for c in range(C)]
        s = softmax([dot(fs, bank[k]) / T for k in range(len(bank))])
        in_loss += -sum(t[k] * math.log(s[k]) for k in range(len(bank))) / len(weak)
        m = 1.0 if max(p) >= p_cutoff else 0.0
        log_q = [math.log(v) for v in softmax(strong[b])]
        unsup += m * -sum(p[c] * log_q[c] for c in range(C)) / len(weak)
        mask.append(m)
        targets.append(p)
    if warm:
        in_loss = 0.0
    return {"loss": sup + lambda_u * unsup + lambda_in * in_loss, "sup": sup, "unsup": unsup,
            "in": in_loss, "mask": mask, "targets": targets}


# ----------------------------------------------------------------------------- loss
@pytest.mark.parametrize("T, alpha", [(0.1, 0.9), (0.2, 0.5), (0.1, 1.0)])
def test_simmatch_loss_by_hand(T, alpha):
    alg = make({"T": T, "smoothing_alpha": alpha, "lambda_u": 1.5, "lambda_in": 0.7})
    res = alg.compute_loss(outputs(), batch(), iteration=3)
    exp = hand(T, alpha, 0.7, 1.5, 0.7, warm=False, history=[])
    assert res.log["sup_loss"] == pytest.approx(exp["sup"], rel=1e-5)
    assert res.log["unsup_loss"] == pytest.approx(exp["unsup"], rel=1e-5, abs=1e-7)
    assert res.log["in_loss"] == pytest.approx(exp["in"], rel=1e-5)
    assert res.loss.item() == pytest.approx(exp["loss"], rel=1e-5)
    assert res.mask.tolist() == exp["mask"]
    assert res.pseudo_label.tolist() == [t.index(max(t)) for t in exp["targets"]]


def test_simmatch_mask_selects_some_samples_but_not_all():
    exp = hand(0.1, 0.9, 0.7, 1.0, 1.0, warm=False, history=[])
    assert exp["mask"] == [1.0, 1.0, 0.0]  # the test exercises both branches
    res = make().compute_loss(outputs(), batch(), iteration=3)
    assert res.mask.tolist() == exp["mask"]


def test_simmatch_first_epoch_has_no_instance_loss_and_no_aggregation():
    alg = make({"bank_warmup": 5})
    res = alg.compute_loss(outputs(), batch(), iteration=4)
    exp = hand(0.1, 0.9, 0.7, 1.0, 1.0, warm=True, history=[])
    assert res.log["in_loss"] == 0.0
    assert res.loss.item() == pytest.approx(exp["loss"], rel=1e-5)
    after = make({"bank_warmup": 5}).compute_loss(outputs(), batch(), iteration=5)
    assert after.log["in_loss"] > 0


def test_simmatch_gradients_flow_to_strong_features_only():
    alg = make()
    out = outputs()
    for k in ("ulb_weak", "ulb_strong"):
        out.feats[k].requires_grad_(True)
    alg.compute_loss(out, batch(), iteration=3).loss.backward()
    assert out.feats["ulb_weak"].grad is None
    assert out.feats["ulb_strong"].grad.abs().sum() > 0


# ----------------------------------------------------------------------------- state updates
def test_simmatch_bank_and_da_queue_over_steps_with_labelled_indices():
    alg = make({"da_len": 2})
    bank = [row[:] for row in BANK]
    labels = BANK_LABELS[:]
    history = []
    steps = [([1, 3], WEAK), ([1, 0], [[0.0, 3.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 2.0]]),
             ([2, 1], [[2.0, 0.0, 0.0], [0.0, 0.0, 5.0], [0.3, 0.0, 0.0]])]
    for idx, weak in steps:
        res = alg.compute_loss(outputs(weak=weak), batch(idx), iteration=3)
        exp = hand(0.1, 0.9, 0.7, 1.0, 1.0, warm=False, history=history[-1:], bank=bank,
                   labels=labels, weak=weak)  # da_len 2: this batch and the previous one
        assert res.loss.item() == pytest.approx(exp["loss"], rel=1e-5)
        history.append(batch_mean([softmax(z) for z in weak]))
        for slot, f, y in zip(idx, F_LB, Y, strict=True):  # normalize(0.7 old + 0.3 new)
            bank[slot] = unit([0.7 * o + 0.3 * n for o, n in zip(bank[slot], unit(f),
                                                                   strict=True)])
            labels[slot] = y
        assert_rows(alg.bank.feats, bank)
        assert alg.bank.labels.tolist() == labels
    # the DA queue holds the last batch means in write order, ring of 2
    da = alg.da.state_dict()
    assert int(da["filled"]) == 3
    assert da["queue"][0].tolist() == pytest.approx(history[2], abs=1e-6)
    assert da["queue"][1].tolist() == pytest.approx(history[1], abs=1e-6)


def test_simmatch_bank_without_labelled_indices_is_a_per_class_fifo():
    alg = make()
    alg.compute_loss(outputs(), batch(), iteration=3)  # y = [0, 1]: slot 0 and slot 2
    expected = [unit(F_LB[0]), BANK[1], unit(F_LB[1]), BANK[3]]
    assert_rows(alg.bank.feats, expected)
    alg.compute_loss(outputs(), batch(), iteration=4)  # class 0 moves on to slot 1
    expected[1] = unit(F_LB[0])
    assert_rows(alg.bank.feats, expected)
    assert alg.bank.labels.tolist() == [0, 0, 1, 2]


def test_simmatch_ema_teacher_writes_the_ema_embeddings_as_they_are():
    ema = Toy(scale=-1.0).eval()  # a different "EMA" network: its embeddings are -f
    alg = make({"ema_teacher": True}, ema_model=ema)
    alg.compute_loss(outputs(), batch([0, 3]), iteration=3)
    expected = [[-x for x in unit(F_LB[0])], BANK[1], BANK[2], [-x for x in unit(F_LB[1])]]
    assert_rows(alg.bank.feats, expected)
    assert alg.bank.labels.tolist() == [0, 0, 1, 1]
    assert ema.ran_in_train_mode  # USB runs the shadow weights in train mode
    assert not ema.training  # and the EMA model's eval mode is restored


def test_simmatch_state_round_trip_gives_the_same_next_loss():
    first = make()
    first.compute_loss(outputs(), batch([1, 2]), iteration=3)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = make()
    second.load_state_dict(torch.load(buffer, weights_only=True))
    a = first.compute_loss(outputs(weak=STRONG), batch([0, 3]), iteration=4)
    b = second.compute_loss(outputs(weak=STRONG), batch([0, 3]), iteration=4)
    assert a.loss.item() == b.loss.item()
    assert torch.equal(first.bank.feats, second.bank.feats)


# ----------------------------------------------------------------------------- params
def test_simmatch_temperature_per_domain_and_one_projection_head():
    # USB's committed configs: 0.1 for CIFAR-100, STL-10 and every NLP task, 0.2 for audio
    assert make_params("simmatch", {}, "image").T == 0.1
    assert make_params("simmatch", {}, "text").T == 0.1
    assert make_params("simmatch", {}, "audio").T == 0.2
    assert make_params("simmatch", {"T": 0.3}, "text").T == 0.3
    alg = create_algorithm("simmatch", {}, num_classes=C, num_iterations=10, num_ulb=3)
    assert list(alg.build_modules(8)) == ["proj"]
    epass = create_algorithm("simmatch", {"epass": True}, num_classes=C, num_iterations=10,
                             num_ulb=3)
    assert list(epass.build_modules(8)) == ["proj", "proj2", "proj3"]
