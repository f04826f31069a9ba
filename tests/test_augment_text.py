"""Tests of the text views (identity weak view, token-edit strong view)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from semibench.augment import build_views
from semibench.augment.text import TextViews

PAD, CLS, SEP, MASK = 0, 101, 102, 103


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The views run on one CPU thread in training; this also keeps timings stable under load."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batch(b: int = 64, length: int = 64, seed: int = 0) -> torch.Tensor:
    """BERT-style rows: [CLS] real... [SEP] pad..., with 1 to length-2 real tokens."""
    g = gen(seed)
    x = torch.full((b, length), PAD, dtype=torch.int64)
    n_real = torch.randint(1, length - 1, (b,), generator=g)
    n_real[0] = length - 2  # one full row without padding
    n_real[1] = 1  # one row with a single real token
    for i, n in enumerate(n_real.tolist()):
        x[i, 0] = CLS
        x[i, 1 : n + 1] = torch.randint(1000, 30000, (n,), generator=g)
        x[i, n + 1] = SEP
    return x


def views(**spec: float) -> dict:
    return build_views("text", spec)


def test_eval_and_weak_are_identity() -> None:
    x = batch()
    v = views()
    assert torch.equal(v["eval"](x, gen()), x)
    assert torch.equal(v["weak"](x, gen()), x)


def test_strong_shape_dtype_and_reproducible() -> None:
    x = batch()
    v = views()
    a = v["strong"](x, gen(1))
    assert a.shape == x.shape and a.dtype == torch.int64
    assert torch.equal(a, v["strong"](x, gen(1)))
    assert not torch.equal(a, v["strong"](x, gen(2)))
    # int32 ids (how the text backbones store them) give the same view, still int32
    a32 = v["strong"](x.to(torch.int32), gen(1))
    assert a32.dtype == torch.int32 and torch.equal(a32.long(), a)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9, 1.0])
def test_strong_keeps_structure(p: float) -> None:
    x = batch()
    out = views(delete_prob=p, swap_prob=p, mask_prob=p)["strong"](x, gen())
    real_in = (x != PAD) & (x != CLS) & (x != SEP)
    real_out = (out != PAD) & (out != CLS) & (out != SEP)
    n_out = real_out.sum(1)
    assert (out[:, 0] == CLS).all()
    rows = torch.arange(len(x))
    assert (out[rows, n_out + 1] == SEP).all()  # [SEP] right after the last real token
    assert ((out == SEP).sum(1) == 1).all() and ((out == CLS).sum(1) == 1).all()
    after = torch.arange(x.shape[1]).unsqueeze(0) > (n_out + 1).unsqueeze(1)
    assert (out[after] == PAD).all()  # padding on the right only
    assert (n_out >= 1).all()  # never deletes every real token
    assert (n_out <= real_in.sum(1)).all()
    for row_in, row_out in zip(x.tolist(), out.tolist(), strict=True):
        allowed = set(row_in) | {MASK, PAD}
        assert set(row_out) <= allowed
        kept = Counter(t for t in row_out if t not in (MASK, PAD))
        assert not kept - Counter(row_in)  # no token appears more often than in the input


def test_special_tokens_never_edited_with_pairs() -> None:
    # sentence pairs have a [SEP] in the middle; it keeps its relative position
    x = torch.tensor([[CLS, 5000, 5001, SEP, 6000, 6001, 6002, SEP, PAD, PAD]])
    out = views(delete_prob=0.0, swap_prob=1.0, mask_prob=0.0)["strong"](x, gen())
    assert torch.equal(out[0, [0, 3, 7, 8, 9]], x[0, [0, 3, 7, 8, 9]])
    assert sorted(out[0, 1:3].tolist()) == [5000, 5001]
    assert sorted(out[0, 4:7].tolist()) == [6000, 6001, 6002]


def test_zero_probabilities_change_nothing() -> None:
    x = batch()
    out = views(delete_prob=0.0, swap_prob=0.0, mask_prob=0.0)["strong"](x, gen())
    assert torch.equal(out, x)


def test_each_edit_acts_alone() -> None:
    x = batch()
    real = (x != PAD) & (x != CLS) & (x != SEP)
    # masking only: same positions, some real tokens become [MASK], nothing else moves
    out = views(delete_prob=0.0, swap_prob=0.0, mask_prob=0.5)["strong"](x, gen())
    changed = out != x
    assert changed.any() and (changed <= real).all() and (out[changed] == MASK).all()
    frac = changed.sum() / real.sum()
    assert 0.4 < frac < 0.6
    # swapping only: each row is a permutation of its input with specials in place
    out = views(delete_prob=0.0, swap_prob=0.5, mask_prob=0.0)["strong"](x, gen())
    assert not torch.equal(out, x)
    assert torch.equal(out[~real], x[~real])
    assert torch.equal(out.sort(1).values, x.sort(1).values)
    # deletion only: the output is a subsequence of the input
    out = views(delete_prob=0.5, swap_prob=0.0, mask_prob=0.0)["strong"](x, gen())
    assert (((out != PAD).sum(1)) < (x != PAD).sum(1)).any()
    for row_in, row_out in zip(x.tolist(), out.tolist(), strict=True):
        it = iter(row_in)
        assert all(t in it for t in row_out if t != PAD)


def test_full_deletion_keeps_one_real_token() -> None:
    x = batch()
    out = views(delete_prob=1.0, swap_prob=0.0, mask_prob=0.0)["strong"](x, gen())
    assert (out[:, 0] == CLS).all() and (out[:, 2] == SEP).all()
    assert (out[:, 3:] == PAD).all()
    for row_in, tok in zip(x.tolist(), out[:, 1].tolist(), strict=True):
        assert tok in row_in[1:-1] and tok not in (PAD, CLS, SEP)


def test_custom_ids_and_bad_spec() -> None:
    x = torch.tensor([[1, 7, 8, 9, 2, 3, 3]])  # cls=1, sep=2, pad=3
    v = build_views(
        "text",
        {
            "pad_id": 3,
            "cls_id": 1,
            "sep_id": 2,
            "mask_id": 4,
            "delete_prob": 0.0,
            "swap_prob": 0.0,
            "mask_prob": 1.0,
        },
    )
    assert v["strong"](x, gen()).tolist() == [[1, 4, 4, 4, 2, 3, 3]]
    with pytest.raises(ValueError):
        TextViews(mask_prob=1.5)
    with pytest.raises(TypeError):
        build_views("text", {"swap_probability": 0.1})


# --------------------------------------------------------------------------- back-translations


def with_translations(k: int = 3, b: int = 256, length: int = 16) -> torch.Tensor:
    """[B, K, L] ids: column j of every row holds only token 1000 * (j + 1) (+ specials)."""
    x = torch.full((b, k, length), PAD, dtype=torch.int64)
    x[:, :, 0] = CLS
    for j in range(k):
        x[:, j, 1:5] = 1000 * (j + 1)
    x[:, :, 5] = SEP
    x[:, :, 1] += torch.arange(b).unsqueeze(1)  # rows differ, so a row mix-up would show
    return x


def test_eval_and_weak_take_the_original_column() -> None:
    x = with_translations()
    v = views()
    assert torch.equal(v["eval"](x, gen()), x[:, 0])
    assert torch.equal(v["weak"](x, gen()), x[:, 0])


def test_strong_is_a_random_back_translation_per_sample() -> None:
    x = with_translations(k=3)
    out = views()["strong"](x, gen(3))
    assert out.shape == (256, 16) and out.dtype == torch.int64
    picked = out[:, 2] // 1000 - 1  # which column each row came from
    assert set(picked.tolist()) == {1, 2}  # never the original, both translations drawn
    assert 0.35 < (picked == 1).float().mean() < 0.65
    for i, j in enumerate(picked.tolist()):
        assert torch.equal(out[i], x[i, j])  # a whole row of the sample's own translation
    assert torch.equal(out, views()["strong"](x, gen(3)))
    assert not torch.equal(out, views()["strong"](x, gen(4)))


def test_single_translation_and_single_column() -> None:
    x = with_translations(k=2, b=8)
    assert torch.equal(views()["strong"](x, gen()), x[:, 1])
    # [B, 1, L] is the original only: the token-edit stand-in applies to it
    one = batch(b=8).unsqueeze(1)
    spec = {"delete_prob": 0.0, "swap_prob": 0.0, "mask_prob": 1.0}
    out = views(**spec)["strong"](one, gen())
    assert out.shape == (8, 64)
    assert torch.equal(out, views(**spec)["strong"](one[:, 0], gen()))


def test_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[B, L\] or \[B, K, L\]"):
        views()["weak"](torch.zeros(2, 3, 4, 5, dtype=torch.int64), gen())
    with pytest.raises(ValueError):
        views()["strong"](torch.zeros(2, 3, dtype=torch.float32), gen())
