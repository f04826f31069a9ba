"""The shared mixup building block: the Beta draw, the permutation, mixing, interleaving, the
chunked forward pass and batch-norm freezing, each checked against values worked out by hand."""

import copy
import math

import pytest
import torch
from torch import nn

from semibench.algorithms.bn import bn_frozen
from semibench.algorithms.mixup import (
    Mixing,
    check_float_inputs,
    forward_chunks,
    interleave,
    sample_mixing,
)
from tests.helpers.nets import BNNet


# ---------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("alpha", [0.5, 0.75, 2.0])
def test_lambda_is_biased_to_own_sample_and_perm_is_a_permutation(alpha):
    g = torch.Generator().manual_seed(3)
    for _ in range(50):
        m = sample_mixing(7, alpha, g)
        assert 0.5 <= m.lam <= 1.0
        assert sorted(m.perm.tolist()) == list(range(7))


def test_same_generator_seed_or_global_seed_gives_the_same_draw():
    a = sample_mixing(9, 0.5, torch.Generator().manual_seed(11))
    b = sample_mixing(9, 0.5, torch.Generator().manual_seed(11))
    c = sample_mixing(9, 0.5, torch.Generator().manual_seed(12))
    assert a.lam == b.lam and torch.equal(a.perm, b.perm)
    assert (a.lam, a.perm.tolist()) != (c.lam, c.perm.tolist())
    torch.manual_seed(5)
    d = sample_mixing(9, 0.5)
    torch.manual_seed(5)
    e = sample_mixing(9, 0.5)
    assert d.lam == e.lam and torch.equal(d.perm, e.perm)


@pytest.mark.parametrize(
    "alpha, expected",
    # Beta(1/2, 1/2) is the arcsine law: lam = sin^2(theta), theta ~ U(0, pi/2), so
    # E max(lam, 1 - lam) = 1/2 + E|cos 2 theta| / 2 = 1/2 + 1/pi; Beta(1, 1) is uniform: 3/4.
    [(0.5, 0.5 + 1 / math.pi), (1.0, 0.75)],
)
def test_lambda_follows_the_folded_beta_distribution(alpha, expected):
    g = torch.Generator().manual_seed(0)
    lams = [sample_mixing(2, alpha, g).lam for _ in range(20000)]
    assert sum(lams) / len(lams) == pytest.approx(expected, abs=0.006)


def test_bad_alpha_rejected():
    with pytest.raises(ValueError, match="alpha"):
        sample_mixing(4, 0.0)


# ---------------------------------------------------------------------------- mixing
def test_mixing_by_hand():
    z = torch.tensor([[1.0, 0.0], [0.0, 2.0], [4.0, 4.0]])
    m = Mixing(lam=0.75, perm=torch.tensor([2, 0, 1]))
    expected = []
    for i, row in enumerate(z.tolist()):
        partner = z.tolist()[int(m.perm[i])]
        expected.append([0.75 * a + 0.25 * b for a, b in zip(row, partner, strict=True)])
    assert torch.allclose(m.apply(z), torch.tensor(expected))
    # row 0 mixes with row 2: 0.75 * [1, 0] + 0.25 * [4, 4]
    assert m.apply(z)[0].tolist() == pytest.approx([1.75, 1.0])
    with pytest.raises(ValueError, match="3 samples"):
        m.apply(torch.zeros(4, 2))


def test_integer_inputs_cannot_be_mixed():
    with pytest.raises(ValueError, match=r"algorithm_params\.mixmatch\.mixup_manifold"):
        check_float_inputs(torch.zeros(2, 5, dtype=torch.long), "mixmatch")
    check_float_inputs(torch.zeros(2, 5), "mixmatch")


# ---------------------------------------------------------------------------- interleave
def test_interleave_by_hand_and_is_its_own_inverse():
    # 3 chunks of 4 rows: slices of sizes 1, 1, 2 (the larger last). Chunk 0 receives slice 1 of
    # chunk 1 and slice 2 of chunk 2, and gives its own slices in exchange.
    rows = torch.arange(12).float().unsqueeze(1)
    chunks = list(rows.split(4))
    out = interleave(chunks, 4)
    assert [c.squeeze(1).tolist() for c in out] == [
        [0, 5, 10, 11],
        [4, 1, 6, 7],
        [8, 9, 2, 3],
    ]
    back = interleave(out, 4)
    assert all(torch.equal(a, b) for a, b in zip(back, chunks, strict=True))


def test_interleave_more_chunks_than_rows():
    # 3 chunks of 2 rows: slice sizes 0, 1, 1; chunk 0 holds no labelled row at all
    rows = torch.arange(6).float()
    out = interleave(list(rows.split(2)), 2)
    assert [c.tolist() for c in out] == [[2, 5], [0, 3], [4, 1]]


def test_interleave_rejects_uneven_chunks():
    with pytest.raises(ValueError, match="chunks of 3"):
        interleave([torch.zeros(3), torch.zeros(2)], 3)


# ---------------------------------------------------------------------------- BN freezing
def test_bn_stats_frozen_keeps_statistics_and_allows_backward():
    net = BNNet(h=5, seed=1, flatten=True)
    net.train()
    before = net.bn_state()
    x = torch.randn(6, 4)
    ref = copy.deepcopy(net)
    with bn_frozen(net):
        y = net(x)
    y.sum().backward()  # the running statistics were never modified in place
    assert all(torch.equal(a, b) for a, b in zip(net.bn_state(), before, strict=True))
    assert net.body[2].track_running_stats
    assert torch.allclose(y, ref(x))  # still normalised by the batch statistics
    assert net.body[1].weight.grad is not None
    # a normal pass does update them
    net(x)
    assert not torch.equal(net.bn_state()[0], before[0])


def test_bn_stats_frozen_leaves_untracked_bn_untracked():
    bn = nn.BatchNorm1d(3, track_running_stats=False)
    with bn_frozen(bn):
        pass
    assert bn.track_running_stats is False


# ---------------------------------------------------------------------------- chunked forward
def test_forward_chunks_updates_bn_with_the_first_interleaved_chunk_only():
    torch.manual_seed(0)
    x = torch.randn(9, 4)
    net = BNNet(h=5, seed=1, flatten=True)
    ref = copy.deepcopy(net)
    out = forward_chunks(net, net, x, 3)
    out.sum().backward()
    # 3 chunks of 3 rows, slices of one row: chunk 0 -> rows 0, 4, 8; chunk 1 -> 3, 1, 5;
    # chunk 2 -> 6, 7, 2 (each forwarded as its own batch, so with its own statistics)
    groups = [[0, 4, 8], [3, 1, 5], [6, 7, 2]]
    expected = torch.zeros(9, 3)
    probe = copy.deepcopy(ref)
    for rows in groups:
        expected[rows] = probe(x[rows])
    assert torch.allclose(out, expected, atol=1e-6)
    ref(x[groups[0]])  # the only pass that may touch the running statistics
    assert all(torch.allclose(a.float(), b.float())
               for a, b in zip(net.bn_state(), ref.bn_state(), strict=True))
    assert int(net.bn_state()[2]) == 1


def test_forward_chunks_rejects_rows_that_do_not_split():
    net = BNNet(h=5, seed=1, flatten=True)
    with pytest.raises(ValueError, match="chunks of 3"):
        forward_chunks(net, net, torch.randn(8, 4), 3)
