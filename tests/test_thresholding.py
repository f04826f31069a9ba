"""The shared thresholding blocks against their definitions, re-implemented here with plain
Python loops (FlexMatch's curriculum, FreeMatch's self-adaptive EMAs, SoftMatch's
truncated-Gaussian statistics)."""

import math
import random

import pytest
import torch

from semibench.algorithms.thresholding import (
    FlexMatchThresholds,
    FreeMatchThresholds,
    TruncatedGaussianWeights,
)


def argmax(row):
    return max(range(len(row)), key=lambda k: row[k])


def random_probs(rng, n, c):
    rows = []
    for _ in range(n):
        z = [rng.gauss(0.0, 2.5) for _ in range(c)]
        e = [math.exp(v) for v in z]
        rows.append([v / sum(e) for v in e])
    return rows


# ---------------------------------------------------------------------------- FlexMatch
def flex_reference(steps, num_classes, num_ulb, p_cutoff, warmup=True):
    """FlexMatch by its definition: mask from the previous beta, then record, then beta."""
    selected = [-1] * num_ulb
    beta = [0.0] * num_classes
    masks, betas = [], []
    for probs, idx in steps:
        mask = []
        for row in probs:
            c = argmax(row)
            threshold = p_cutoff * beta[c] / (2.0 - beta[c])
            mask.append(1.0 if row[c] >= threshold else 0.0)
        for row, i in zip(probs, idx, strict=True):
            c = argmax(row)
            if row[c] >= p_cutoff:
                selected[i] = c
        counts = {k: 0 for k in range(-1, num_classes)}
        for s in selected:
            counts[s] += 1
        if any(counts[k] for k in range(num_classes)):
            # with warm-up the never-selected count (-1) competes in the maximum
            used = counts.values() if warmup else [counts[k] for k in range(num_classes)]
            denom = max(used)
            beta = [counts[k] / denom for k in range(num_classes)]
        masks.append(mask)
        betas.append(list(beta))
    return masks, betas, selected


# a designed run: C=3, 6 unlabelled samples, tau=0.9
FLEX_STEPS = [
    ([[0.95, 0.03, 0.02], [0.5, 0.3, 0.2], [0.1, 0.85, 0.05]], [0, 1, 2]),
    ([[0.92, 0.04, 0.04], [0.6, 0.2, 0.2], [0.05, 0.05, 0.9]], [3, 4, 5]),
    ([[0.55, 0.4, 0.05], [0.3, 0.6, 0.1], [0.96, 0.02, 0.02]], [1, 2, 4]),
    ([[0.85, 0.1, 0.05], [0.2, 0.1, 0.7], [0.3, 0.4, 0.3]], [0, 1, 5]),
]


def flat(rows):
    return [v for row in rows for v in row]


def run_flex(thresholds, steps):
    masks, betas = [], []
    for probs, idx in steps:
        probs = torch.tensor(probs, dtype=torch.float64)  # exact, as the Python reference
        masks.append(thresholds(probs, torch.tensor(idx)).tolist())
        betas.append(thresholds.classwise_acc.tolist())
    return masks, betas


def test_flexmatch_thresholds_start_at_zero_and_rise():
    flex = FlexMatchThresholds(3, 6, p_cutoff=0.9)
    assert flex.thresholds().tolist() == [0.0, 0.0, 0.0]
    assert flex.selected_label.tolist() == [-1] * 6
    masks, betas = run_flex(flex, FLEX_STEPS)
    # step 1: thresholds 0, everything passes, even max p = 0.5
    assert masks[0] == [1.0, 1.0, 1.0]
    # by hand: 1 of 6 selected as class 0, 5 unused -> beta_0 = 1/5
    assert betas[0] == pytest.approx([0.2, 0.0, 0.0])
    # 2 selected as 0, 1 as 2, 3 unused -> beta = (2/3, 0, 1/3)
    assert betas[1] == pytest.approx([2 / 3, 0.0, 1 / 3])
    # step 3: class 0's threshold is 0.9 * (2/3) / (4/3) = 0.45 <= 0.55: passes
    assert masks[2] == [1.0, 1.0, 1.0]
    assert betas[2] == pytest.approx([1.0, 0.0, 1 / 3])
    # step 4: class 0 now needs 0.9 (0.85 fails); class 2 needs 0.9*(1/3)/(5/3) = 0.18
    assert masks[3] == [0.0, 1.0, 1.0]
    assert flex.thresholds().tolist() == pytest.approx([0.9, 0.0, 0.9 * (1 / 3) / (5 / 3)])
    assert flex.selected_label.tolist() == [0, -1, -1, 0, 0, 2]
    ref_masks, ref_betas, ref_selected = flex_reference(FLEX_STEPS, 3, 6, 0.9)
    assert masks == ref_masks and flat(betas) == pytest.approx(flat(ref_betas))


@pytest.mark.parametrize("warmup", [True, False])
def test_flexmatch_matches_definition_on_random_batches(warmup):
    rng = random.Random(1)
    steps = []
    for _ in range(12):
        probs = random_probs(rng, 8, 4)
        steps.append((probs, rng.sample(range(20), 8)))
    flex = FlexMatchThresholds(4, 20, p_cutoff=0.7, thresh_warmup=warmup)
    masks, betas = run_flex(flex, steps)
    ref_masks, ref_betas, ref_selected = flex_reference(steps, 4, 20, 0.7, warmup=warmup)
    assert masks == ref_masks
    assert flat(betas) == pytest.approx(flat(ref_betas), abs=1e-6)
    assert flex.selected_label.tolist() == ref_selected
    assert any(0.0 in m for m in masks)  # the run did reach non-trivial thresholds


def test_flexmatch_without_warmup_excludes_unused_from_the_normaliser():
    flex = FlexMatchThresholds(3, 6, p_cutoff=0.9, thresh_warmup=False)
    flex(torch.tensor(FLEX_STEPS[0][0]), torch.tensor(FLEX_STEPS[0][1]))
    # 1 selected as class 0; the 5 unused do not count: beta_0 = 1/1
    assert flex.classwise_acc.tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_flexmatch_keeps_updating_when_all_samples_share_a_class():
    """USB freezes beta once max(counter) == num_ulb; the intent is to keep it current."""
    flex = FlexMatchThresholds(2, 2, p_cutoff=0.9)
    flex(torch.tensor([[0.05, 0.95]]), torch.tensor([0]))
    assert flex.classwise_acc.tolist() == pytest.approx([0.0, 1.0])  # 1 vs 1 unused
    flex(torch.tensor([[0.95, 0.05], [0.97, 0.03]]), torch.tensor([0, 1]))
    assert flex.classwise_acc.tolist() == pytest.approx([1.0, 0.0])


@pytest.mark.parametrize("mapping, expected", [
    ("convex", 0.5 / 1.5), ("linear", 0.5), ("concave", math.log2(1.5))])
def test_flexmatch_mappings(mapping, expected):
    flex = FlexMatchThresholds(2, 4, p_cutoff=0.8, mapping=mapping)
    flex.classwise_acc = torch.tensor([0.5, 0.0])
    assert flex.thresholds()[0].item() == pytest.approx(0.8 * expected)


def test_flexmatch_state_round_trip():
    flex = FlexMatchThresholds(3, 6, p_cutoff=0.9)
    run_flex(flex, FLEX_STEPS[:2])
    copy = FlexMatchThresholds(3, 6, p_cutoff=0.9)
    copy.load_state_dict(flex.state_dict())
    assert run_flex(copy, FLEX_STEPS[2:]) == run_flex(flex, FLEX_STEPS[2:])
    with pytest.raises(ValueError, match="shape"):
        FlexMatchThresholds(3, 7, p_cutoff=0.9).load_state_dict(flex.state_dict())


# ---------------------------------------------------------------------------- FreeMatch
def quantile(values, q):
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (pos - lo) * (s[hi] - s[lo])


def free_reference(batches, num_classes, m, use_quantile=False, clip=False):
    time_p = 1.0 / num_classes
    p_model = [1.0 / num_classes] * num_classes
    hist = [1.0 / num_classes] * num_classes
    out = []
    for probs in batches:
        n = len(probs)
        conf = [max(r) for r in probs]
        stat = quantile(conf, 0.8) if use_quantile else sum(conf) / n
        time_p = m * time_p + (1 - m) * stat
        if clip:
            time_p = min(max(time_p, 0.0), 0.95)
        for c in range(num_classes):
            p_model[c] = m * p_model[c] + (1 - m) * sum(r[c] for r in probs) / n
            count = sum(1 for r in probs if argmax(r) == c)
            hist[c] = m * hist[c] + (1 - m) * count / n
        mask = []
        for r in probs:
            c = argmax(r)
            mask.append(1.0 if r[c] >= time_p * p_model[c] / max(p_model) else 0.0)
        out.append((time_p, list(p_model), list(hist), mask))
    return out


@pytest.mark.parametrize("use_quantile, clip", [(False, False), (True, False), (True, True)])
def test_freematch_threshold_follows_ema_of_confidence(use_quantile, clip):
    rng = random.Random(3)
    batches = [random_probs(rng, 6, 3) for _ in range(5)]
    batches.append([[0.99, 0.005, 0.005]] * 6)  # a very confident batch (clip: <= 0.95)
    free = FreeMatchThresholds(3, momentum=0.5, use_quantile=use_quantile, clip_thresh=clip)
    assert free.time_p.item() == pytest.approx(1 / 3)
    ref = free_reference(batches, 3, 0.5, use_quantile, clip)
    for probs, (time_p, p_model, hist, mask) in zip(batches, ref, strict=True):
        t = torch.tensor(probs)
        free.update(t)
        assert free.time_p.item() == pytest.approx(time_p, rel=1e-5)
        assert free.p_model.tolist() == pytest.approx(p_model, rel=1e-5)
        assert free.label_hist.tolist() == pytest.approx(hist, rel=1e-5)
        assert free.mask(t).tolist() == mask
    if clip:
        assert free.time_p.item() <= 0.95


def test_freematch_state_round_trip():
    free = FreeMatchThresholds(3, momentum=0.9)
    free.update(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    copy = FreeMatchThresholds(3, momentum=0.9)
    copy.load_state_dict(free.state_dict())
    nxt = torch.tensor([[0.3, 0.4, 0.3], [0.9, 0.05, 0.05]])
    free.update(nxt)
    copy.update(nxt)
    for name in ("time_p", "p_model", "label_hist"):
        assert torch.equal(getattr(free, name), getattr(copy, name))
    with pytest.raises(ValueError, match="expected"):
        copy.load_state_dict({"time_p": free.time_p})


# ---------------------------------------------------------------------------- SoftMatch
def unbiased_var(values):
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def test_truncated_gaussian_mu_var_follow_their_emas():
    rng = random.Random(5)
    batches = [random_probs(rng, 5, 4) for _ in range(4)]
    tg = TruncatedGaussianWeights(4, momentum=0.7, n_sigma=2.0)
    assert tg.mu.item() == pytest.approx(0.25) and tg.var.item() == 1.0
    mu, var = 0.25, 1.0
    for probs in batches:
        conf = [max(r) for r in probs]
        mu = 0.7 * mu + 0.3 * sum(conf) / len(conf)
        var = 0.7 * var + 0.3 * unbiased_var(conf)
        t = torch.tensor(probs)
        tg.update(t)
        assert tg.mu.item() == pytest.approx(mu, rel=1e-5)
        assert tg.var.item() == pytest.approx(var, rel=1e-5)
        weights = tg(t).tolist()
        for w, p in zip(weights, conf, strict=True):
            expected = 1.0 if p >= mu else math.exp(-((p - mu) ** 2) / (2 * var / 4.0))
            assert w == pytest.approx(expected, rel=1e-5)
    assert min(weights) < 1.0 and max(weights) == 1.0


def test_truncated_gaussian_batch_of_one_keeps_variance():
    tg = TruncatedGaussianWeights(2, momentum=0.5)
    tg.update(torch.tensor([[0.8, 0.2]]))
    assert tg.mu.item() == pytest.approx(0.5 * 0.5 + 0.5 * 0.8)
    assert tg.var.item() == 1.0  # an unbiased variance needs two samples


def test_truncated_gaussian_per_class():
    """Per class: a class's mean moves only if it is predicted, its variance only if twice."""
    tg = TruncatedGaussianWeights(3, momentum=0.5, n_sigma=1.0, per_class=True)
    probs = [[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]]  # class 0 twice, 1 once
    tg.update(torch.tensor(probs))
    mu0 = 0.5 / 3 + 0.5 * (0.9 + 0.6) / 2
    var0 = 0.5 + 0.5 * unbiased_var([0.9, 0.6])
    mu1 = 0.5 / 3 + 0.5 * 0.7
    assert tg.mu.tolist() == pytest.approx([mu0, mu1, 1 / 3])
    assert tg.var.tolist() == pytest.approx([var0, 1.0, 1.0])
    weights = tg(torch.tensor(probs)).tolist()
    expected = [1.0 if p >= mu else math.exp(-((p - mu) ** 2) / (2 * v))
                for p, mu, v in [(0.9, mu0, var0), (0.6, mu0, var0), (0.7, mu1, 1.0)]]
    assert weights == pytest.approx(expected, rel=1e-5)
    copy = TruncatedGaussianWeights(3, momentum=0.5, n_sigma=1.0, per_class=True)
    copy.load_state_dict(tg.state_dict())
    assert torch.equal(copy.mu, tg.mu) and torch.equal(copy.var, tg.var)
    with pytest.raises(ValueError, match="shape"):
        TruncatedGaussianWeights(3).load_state_dict(tg.state_dict())
