"""The memory blocks: SimMatch's labelled bank and CoMatch's feature + probability queue,
checked slot by slot against their definitions, and restored exactly from a checkpoint."""

import io
import math

import pytest
import torch

from semibench.algorithms.memory import FeatureProbQueue, LabelledBank


def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def rows(t):
    return [[float(x) for x in r] for r in t]


def assert_rows(actual, expected, tol=1e-6):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert a == pytest.approx(e, abs=tol)


def save_load(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# ----------------------------------------------------------------------------- LabelledBank
def test_bank_layout_follows_class_counts_and_starts_on_the_unit_sphere():
    before = torch.random.get_rng_state()
    bank = LabelledBank(torch.tensor([2, 0, 3]), dim=4)
    assert torch.equal(torch.random.get_rng_state(), before)  # global RNG untouched
    assert bank.labels.tolist() == [0, 0, 2, 2, 2]
    assert len(bank) == 5
    for r in rows(bank.feats):
        assert math.sqrt(sum(x * x for x in r)) == pytest.approx(1.0, abs=1e-6)
    again = LabelledBank(torch.tensor([2, 0, 3]), dim=4)
    assert torch.equal(bank.feats, again.feats)  # deterministic start


def test_bank_rejects_an_empty_labelled_set():
    with pytest.raises(ValueError, match="at least one labelled sample"):
        LabelledBank(torch.tensor([0, 0]), dim=2)


def test_bank_write_blends_with_momentum_and_renormalises_each_sample():
    bank = LabelledBank(torch.tensor([2, 2]), dim=2)
    start = rows(bank.feats)
    bank.feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]])
    old = rows(bank.feats)
    new = [[0.0, 1.0], [0.8, -0.6]]
    bank.write(torch.tensor([0, 3]), torch.tensor(new), torch.tensor([1, 0]), momentum=0.7)
    expected = [row[:] for row in old]
    for slot, f in zip([0, 3], new, strict=True):
        expected[slot] = unit([0.7 * o + 0.3 * n for o, n in zip(old[slot], f, strict=True)])
    assert_rows(rows(bank.feats), expected)
    assert bank.labels.tolist() == [1, 0, 1, 0]
    assert start != rows(bank.feats)

    # momentum 0 writes the new embedding as it is (USB's EMA-teacher variant)
    bank.write(torch.tensor([1]), torch.tensor([[0.28, 0.96]]), torch.tensor([1]), momentum=0.0)
    expected[1] = [0.28, 0.96]
    assert_rows(rows(bank.feats), expected)


def test_bank_write_rejects_slots_outside_the_labelled_set():
    """Checked on the device (an asynchronous assert: on the CPU it raises at once)."""
    bank = LabelledBank(torch.tensor([1, 1]), dim=2)
    with pytest.raises(RuntimeError, match="out of range"):
        bank.write(torch.tensor([2]), torch.ones(1, 2), torch.tensor([0]))


def test_bank_push_is_a_fifo_per_class_over_several_steps():
    bank = LabelledBank(torch.tensor([2, 1]), dim=2)  # slots: 0, 1 -> class 0; 2 -> class 1
    init = rows(bank.feats)
    a, b, c, d, e = [1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6], [-1.0, 0.0]
    bank.push(torch.tensor([a, b]), torch.tensor([0, 1]))
    assert_rows(rows(bank.feats), [a, init[1], b])
    assert bank.ptr.tolist() == [1, 1]
    bank.push(torch.tensor([c, d]), torch.tensor([0, 0]))  # class 0 wraps around: c, d
    assert_rows(rows(bank.feats), [d, c, b])
    assert bank.ptr.tolist() == [3, 1]
    bank.push(torch.tensor([e]), torch.tensor([1]))
    assert_rows(rows(bank.feats), [d, c, e])
    assert bank.ptr.tolist() == [3, 2]
    assert bank.labels.tolist() == [0, 0, 1]


def test_bank_state_round_trip_is_exact_and_checks_the_shape():
    bank = LabelledBank(torch.tensor([2, 1]), dim=3)
    bank.push(torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([0]))
    restored = LabelledBank(torch.tensor([2, 1]), dim=3, seed=5)
    restored.load_state_dict(save_load(bank.state_dict()))
    for key, value in bank.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value)
    for b in (bank, restored):  # both continue identically
        b.push(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), torch.tensor([0, 0]))
    assert torch.equal(bank.feats, restored.feats) and torch.equal(bank.ptr, restored.ptr)
    with pytest.raises(ValueError, match="does not fit"):
        LabelledBank(torch.tensor([3, 1]), dim=3).load_state_dict(bank.state_dict())
    with pytest.raises(ValueError, match="lacks"):
        restored.load_state_dict({"feats": bank.feats})


# ----------------------------------------------------------------------------- FeatureProbQueue
def test_queue_is_a_ring_buffer_with_pointer_and_fill_count():
    q = FeatureProbQueue()
    assert q.size == 0 and not q.is_full
    with pytest.raises(RuntimeError, match="allocate"):
        q.push(torch.ones(1, 2), torch.ones(1, 3))
    q.allocate(5, dim=2, num_classes=3)
    assert rows(q.feats) == [[0.0, 0.0]] * 5
    f = [[float(i), -float(i)] for i in range(1, 7)]  # a..f
    p = [[float(i), 0.0, 1.0] for i in range(1, 7)]
    expected_ptr, expected_filled = [2, 4, 1], [2, 4, 5]
    for step in range(3):
        q.push(torch.tensor(f[2 * step : 2 * step + 2]), torch.tensor(p[2 * step : 2 * step + 2]))
        assert int(q.ptr) == expected_ptr[step]
        assert int(q.filled) == expected_filled[step]
    # rows written at 0,1 | 2,3 | 4,0: row 0 holds the sixth entry
    assert_rows(rows(q.feats), [f[5], f[1], f[2], f[3], f[4]])
    assert_rows(rows(q.probs), [p[5], p[1], p[2], p[3], p[4]])
    assert q.is_full
    with pytest.raises(ValueError, match="do not fit"):
        q.push(torch.ones(6, 2), torch.ones(6, 3))
    with pytest.raises(ValueError, match="size"):
        FeatureProbQueue().allocate(0, 2, 3)


def test_queue_state_round_trip_is_exact():
    q = FeatureProbQueue()
    q.allocate(4, dim=2, num_classes=2)
    q.push(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), torch.eye(2)[[0, 1, 0]])
    restored = FeatureProbQueue()
    restored.load_state_dict(save_load(q.state_dict()))
    for b in (q, restored):
        b.push(torch.tensor([[7.0, 8.0], [9.0, 0.0]]), torch.eye(2)[[1, 1]])
    for key, value in q.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value)
    assert int(restored.ptr) == 1 and int(restored.filled) == 4
