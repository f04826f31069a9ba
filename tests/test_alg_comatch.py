"""CoMatch against values computed by hand from the paper's formulas (explicit loops), its
memory queue and alignment queue over several steps, and its parameter checks."""

import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semibench.algorithms import Batch, Outputs, create_algorithm, make_params
from semibench.algorithms.base import DataInfo
from semibench.algorithms.comatch import pseudo_label_graph
from tests.alg_helpers import deg, dot, softmax, unit

C = 3


F_W = [deg(10, 2.0), deg(125, 0.5), deg(250, 3.0)]
F_S0 = [deg(20, 1.5), deg(100, 1.0), deg(200, 0.7)]
F_S1 = [deg(-5), deg(140, 2.0), deg(260, 1.0)]
F_LB = [deg(45), deg(60, 2.0)]
Y = [0, 2]
LB = [[2.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
WEAK = [[4.0, 0.0, 0.0], [3.5, 0.0, 0.5], [0.2, 0.1, 2.5]]
STRONG = [[1.0, 2.0, 0.0], [0.0, 1.0, -1.0], [0.5, -1.0, 2.0]]
QUEUE_F = [deg(0), deg(90), deg(180), deg(270), deg(30)]
QUEUE_P = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.0, 0.0, 1.0], [0.2, 0.2, 0.6], [1.0, 0.0, 0.0]]


class Unit(nn.Module):
    def forward(self, x):
        return F.normalize(x, dim=-1)


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.ssl_heads = nn.ModuleDict({"proj": Unit()})


def make(**params):
    base = {"p_cutoff": 0.6, "contrast_p_cutoff": 0.5, "queue_batch": 1, "bank_warmup": 0}
    alg = create_algorithm("comatch", {**base, **params}, domain="image", num_classes=C,
                           num_iterations=100, num_ulb=3)
    alg.attach(Toy(), None, DataInfo(domain="image", num_classes=C, num_lb=2, num_ulb=3,
                                     lb_class_counts=torch.tensor([1, 0, 1])))
    return alg


def outputs(weak=WEAK):
    return Outputs(
        logits={"lb_weak": torch.tensor(LB), "ulb_weak": torch.tensor(weak),
                "ulb_strong": torch.tensor(STRONG), "ulb_strong2": torch.zeros(3, C)},
        feats={"lb_weak": torch.tensor(F_LB), "ulb_weak": torch.tensor(F_W),
               "ulb_strong": torch.tensor(F_S0), "ulb_strong2": torch.tensor(F_S1)},
    )


def batch():
    return Batch(x_lb={}, y_lb=torch.tensor(Y), idx_ulb=torch.arange(3))


def preset_queue(alg):
    alg.queue.allocate(5, 2, C)
    alg.queue.feats = torch.tensor(QUEUE_F)
    alg.queue.probs = torch.tensor(QUEUE_P)
    alg.queue.filled = 5


# ----------------------------------------------------------------------------- by hand
def batch_mean(probs):
    return [sum(p[c] for p in probs) / len(probs) for c in range(C)]


def aligned(probs, history):
    p_model = [sum(h[c] for h in history) / len(history) for c in range(C)]
    out = []
    for p in probs:
        q = [p[c] * (1 / C + 1e-6) / (p_model[c] + 1e-6) for c in range(C)]
        out.append([v / sum(q) for v in q])
    return out


def hand(T=0.2, alpha=0.9, p_cutoff=0.6, graph_cutoff=0.5, lambda_u=1.0, lambda_c=1.0,
         smooth=False, history=(), weak=WEAK):
    n = len(weak)
    sup = sum(-math.log(softmax(z)[y]) for z, y in zip(LB, Y, strict=True)) / len(LB)
    probs = [softmax(z) for z in weak]
    p = aligned(probs, list(history) + [batch_mean(probs)])
    p_orig = [row[:] for row in p]
    if smooth:
        for b in range(n):
            a = softmax([dot(unit(F_W[b]), q) / T for q in QUEUE_F])
            p[b] = [alpha * p[b][c] + (1 - alpha) * sum(a[j] * QUEUE_P[j][c] for j in range(5))
                    for c in range(C)]
    mask = [1.0 if max(row) >= p_cutoff else 0.0 for row in p]
    unsup = 0.0
    for b in range(n):
        log_q = [math.log(v) for v in softmax(STRONG[b])]
        unsup += mask[b] * -sum(p[b][c] * log_q[c] for c in range(C)) / n
    graph = []
    for b in range(n):
        w = [1.0 if j == b else sum(p[b][c] * p[j][c] for c in range(C)) for j in range(n)]
        w = [v if v >= graph_cutoff else 0.0 for v in w]
        graph.append([v / sum(w) for v in w])
    contrast = 0.0
    for b in range(n):
        sim = [math.exp(dot(unit(F_S0[b]), unit(F_S1[j])) / T) for j in range(n)]
        contrast += -sum(graph[b][j] * math.log(sim[j] / sum(sim) + 1e-7) for j in range(n)) / n
    return {"loss": sup + lambda_u * unsup + lambda_c * contrast, "unsup": unsup,
            "contrast": contrast, "mask": mask, "p": p, "p_orig": p_orig, "graph": graph}


# ----------------------------------------------------------------------------- loss
@pytest.mark.parametrize("lambda_u, lambda_c, T", [(1.0, 1.0, 0.2), (2.0, 0.5, 0.5)])
def test_comatch_loss_by_hand_without_smoothing(lambda_u, lambda_c, T):
    alg = make(lambda_u=lambda_u, lambda_c=lambda_c, T=T)
    res = alg.compute_loss(outputs(), batch(), iteration=0)  # iteration <= queue_batch
    exp = hand(T=T, lambda_u=lambda_u, lambda_c=lambda_c)
    assert res.log["unsup_loss"] == pytest.approx(exp["unsup"], rel=1e-5)
    assert res.log["contrast_loss"] == pytest.approx(exp["contrast"], rel=1e-5)
    assert res.loss.item() == pytest.approx(exp["loss"], rel=1e-5)
    assert res.mask.tolist() == exp["mask"]
    assert res.pseudo_label.tolist() == [r.index(max(r)) for r in exp["p"]]


def test_comatch_loss_by_hand_with_memory_smoothing():
    alg = make()
    preset_queue(alg)
    res = alg.compute_loss(outputs(), batch(), iteration=2)
    exp = hand(smooth=True)
    assert exp["mask"] == [1.0, 0.0, 0.0]  # both branches of the mask are exercised
    assert res.mask.tolist() == exp["mask"]
    assert res.loss.item() == pytest.approx(exp["loss"], rel=1e-5)
    assert res.log["contrast_loss"] == pytest.approx(exp["contrast"], rel=1e-5)
    assert hand(smooth=False)["loss"] != pytest.approx(exp["loss"], rel=1e-4)
    # the queue receives the aligned, unsmoothed probabilities (p_orig) and one-hot labels
    enqueued = exp["p_orig"] + [[1.0 if c == y else 0.0 for c in range(C)] for y in Y]
    for a, e in zip(alg.queue.probs.tolist(), enqueued, strict=True):
        assert a == pytest.approx(e, abs=1e-6)
    assert exp["p_orig"][0] != pytest.approx(exp["p"][0], abs=1e-3)


@pytest.mark.parametrize("iteration, warmup", [(1, 0), (5, 10)])
def test_comatch_no_smoothing_before_the_queue_is_full_or_in_the_first_epoch(iteration, warmup):
    alg = make(bank_warmup=warmup)
    preset_queue(alg)
    res = alg.compute_loss(outputs(), batch(), iteration=iteration)
    assert res.loss.item() == pytest.approx(hand(smooth=False)["loss"], rel=1e-5)


def test_pseudo_label_graph_cuts_weak_edges_and_normalises_rows():
    p = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]])
    # W = p p^T: off-diagonal 0.74, 0.18, 0.26; cut below 0.5; diagonal 1
    expected = [[1 / 1.74, 0.74 / 1.74, 0.0], [0.74 / 1.74, 1 / 1.74, 0.0], [0.0, 0.0, 1.0]]
    graph = pseudo_label_graph(p, 0.5).tolist()
    for a, e in zip(graph, expected, strict=True):
        assert a == pytest.approx(e, abs=1e-6)


def test_comatch_gradients_reach_both_strong_embeddings_not_the_weak_one():
    alg = make()
    out = outputs()
    for k in ("ulb_weak", "ulb_strong", "ulb_strong2"):
        out.feats[k].requires_grad_(True)
    alg.compute_loss(out, batch(), iteration=0).loss.backward()
    assert out.feats["ulb_weak"].grad is None
    assert out.feats["ulb_strong"].grad.abs().sum() > 0
    assert out.feats["ulb_strong2"].grad.abs().sum() > 0


# ----------------------------------------------------------------------------- state updates
def test_comatch_queue_and_da_over_steps():
    alg = make(queue_batch=2, da_len=2)  # queue of 2 * (3 + 2) = 10 rows
    weaks = [WEAK, [[0.0, 3.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 2.0]],
             [[2.0, 0.0, 0.0], [0.0, 0.0, 5.0], [0.3, 0.0, 0.0]]]
    history = []
    rows_f = [[0.0, 0.0]] * 10
    rows_p = [[0.0] * C] * 10
    for step, weak in enumerate(weaks):
        res = alg.compute_loss(outputs(weak), batch(), iteration=step)  # no smoothing yet
        exp = hand(weak=weak, history=history[-1:])
        assert res.loss.item() == pytest.approx(exp["loss"], rel=1e-5)
        history.append(batch_mean([softmax(z) for z in weak]))
        start = (5 * step) % 10
        new_f = [unit(f) for f in F_W] + [unit(f) for f in F_LB]
        new_p = exp["p_orig"] + [[1.0 if c == y else 0.0 for c in range(C)] for y in Y]
        for i in range(5):
            rows_f[start + i], rows_p[start + i] = new_f[i], new_p[i]
        assert alg.queue.size == 10
        assert int(alg.queue.ptr) == (5 * (step + 1)) % 10
        assert int(alg.queue.filled) == min(5 * (step + 1), 10)
        for a, e in zip(alg.queue.feats.tolist(), rows_f, strict=True):
            assert a == pytest.approx(e, abs=1e-6)
        for a, e in zip(alg.queue.probs.tolist(), rows_p, strict=True):
            assert a == pytest.approx(e, abs=1e-6)
    assert int(alg.da.state_dict()["filled"]) == 3


def test_comatch_state_round_trip_gives_the_same_next_loss():
    first = make()
    first.compute_loss(outputs(), batch(), iteration=0)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = make()
    second.load_state_dict(torch.load(buffer, weights_only=True))
    a = first.compute_loss(outputs(STRONG), batch(), iteration=3)  # smoothing on (3 > 1)
    b = second.compute_loss(outputs(STRONG), batch(), iteration=3)
    assert a.loss.item() == b.loss.item()
    assert torch.equal(first.queue.feats, second.queue.feats)


# ----------------------------------------------------------------------------- params
def test_comatch_queue_batch_per_domain():
    assert make_params("comatch", {}, "image").queue_batch == 32
    assert make_params("comatch", {}, "text").queue_batch == 128
    assert make_params("comatch", {}, "audio").queue_batch == 128
    alg = create_algorithm("comatch", {}, num_classes=C, num_iterations=10, num_ulb=3)
    assert alg.ulb_views == ("weak", "strong", "strong2")
    assert alg.build_modules(8)["proj"].net[-1].out_features == 64
