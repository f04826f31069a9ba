"""Imbalance methods next to USB's own code (issue 18, part 8): the order of SAW's and Adsh's
updates, DARP's first refined step, and, where semilearn 0.3.2 is installed (`make
bench-deps`), its DebiasPL, SAW, Adsh, DARP and CoSSL pieces run on the same numbers as ours.
docs/deviations-imbalance.md lists what is followed and what is not."""

from __future__ import annotations

import copy
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from semibench.algorithms import Batch, Outputs
from semibench.algorithms.base import DataInfo
from semibench.compose import create_algorithm, parse_label

SEMILEARN_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / ".semilearn"
#: USB's classic_cv_imb run: 256 epochs of 1024 steps
USB_T, USB_EPOCH = 262_144, 1024


def composed(name: str, counts: list[int], num_ulb: int, iterations: int = 10, **params):
    alg = create_algorithm(parse_label(name), {}, params, num_classes=len(counts),
                           num_iterations=iterations, num_ulb=num_ulb)
    alg.attach(nn.Identity(), None, DataInfo(domain="image", num_classes=len(counts),
                                             num_lb=sum(counts), num_ulb=num_ulb,
                                             lb_class_counts=torch.tensor(counts)))
    return alg


def method(name: str, counts: list[int], num_ulb: int, iterations: int = 10, **params):
    return composed(name, counts, num_ulb, iterations, **params).method


def step(weak, idx, strong=None) -> tuple[Outputs, Batch]:
    """A step's outputs: ``weak`` unlabelled logits, one labelled row of class 0."""
    weak = torch.as_tensor(weak, dtype=torch.float32)
    strong = torch.zeros_like(weak) if strong is None else strong
    lb = torch.zeros(1, weak.shape[1])
    return (Outputs(logits={"lb_weak": lb, "ulb_weak": weak, "ulb_strong": strong}, feats={}),
            Batch(x_lb={}, y_lb=torch.tensor([0]), idx_ulb=torch.as_tensor(list(idx))))


def one_hot_logits(classes: list[int], k: int) -> list[list[float]]:
    return [[4.0 if c == j else 0.0 for j in range(k)] for c in classes]


# ------------------------------------------------------------------ ours, USB's order

def test_saw_update_reads_the_pool_before_its_step():
    # pool of 4; steps 0 and 1 record classes 0, 0 | 0, 1; step 2 (an update step) sees a
    # batch predicted 1, 1: the update counts 3, 1 from before the step, not 1, 3 after it
    saw = method("fixmatch_saw", [3, 1], num_ulb=4, update_every=2)
    saw.adjust_outputs(*step(one_hot_logits([0, 0], 2), [0, 1]), 0)
    saw.adjust_outputs(*step(one_hot_logits([0, 1], 2), [2, 3]), 1)
    assert saw.ulb_weights.tolist() == [1.0, 1.0]
    saw.adjust_outputs(*step(one_hot_logits([1, 1], 2), [0, 1]), 2)
    from semibench.imbalance.saw import effective_weights
    assert saw.ulb_weights.tolist() == effective_weights(torch.tensor([3, 1])).tolist()
    assert saw.pred.tolist() == [1, 1, 0, 1]  # the step's own classes recorded after


def test_adsh_update_reads_the_pool_before_its_step():
    # the same order in Adsh, through FixMatch's step: the update at step 2 ranks the
    # confidences recorded at steps 0 and 1, then step 2's mask records its own
    alg = composed("fixmatch_adsh", [3, 1], num_ulb=4, update_every=2)
    head = [[0.99, 0.01], [0.90, 0.10]]  # one of two head samples passes 0.95: rho 1/2
    tail = [[0.2, 0.8], [0.4, 0.6]]
    for it, (probs, idx) in enumerate([(head, [0, 1]), (tail, [2, 3])]):
        alg.compute_loss(*step(torch.log(torch.tensor(probs)), idx), it)
    assert alg.method.thresholds.tolist() == pytest.approx([0.95, 0.95])  # tau_1 until then
    # step 2 predicts samples 2, 3 as class 1 at 0.9, 0.95: counted, class 1's threshold
    # would be 0.95; before the step it is the 1st of (0.8, 0.6)
    alg.compute_loss(*step(torch.log(torch.tensor([[0.1, 0.9], [0.05, 0.95]])), [2, 3]), 2)
    assert alg.method.thresholds.tolist() == pytest.approx([0.99, 0.8])
    assert alg.method.conf[2:].tolist() == pytest.approx([0.9, 0.95])  # recorded after


def darp_at_usb_length():
    return method("fixmatch_darp", [1, 1], num_ulb=2, iterations=USB_T)


def test_darp_first_refinement_is_usbs_step():
    # USB: 'epoch > 200' with epochs from 0 -> from step 201 x 1024 = 205,824 on, refined at
    # steps divisible by 10: first at 205,830; here warmup 201/256 gives the same steps
    darp = darp_at_usb_length()
    assert darp.p.warmup * USB_T == 201 * USB_EPOCH
    weak = [[4.0, 0.0], [2.0, 0.0]]  # both class 0; the target (1 : 1) moves one to class 1
    for it in range(205_815, 205_835):
        out, batch = step(weak, [0, 1])
        adjusted = darp.adjust_outputs(out, batch, it)
        if it < 205_830:  # warm-up, then six steps without a refinement: the base's labels
            assert darp.refined_at == -1 and adjusted is out, it
        else:
            assert darp.refined_at == 205_830
    assert torch.softmax(adjusted.logits["ulb_weak"], 1).argmax(1).tolist() == [0, 1]


# ------------------------------------------------------------------ USB's code beside ours

@pytest.fixture(scope="module")
def usb():
    """semilearn 0.3.2 from benchmarks/.semilearn, with stand-ins for modules it imports but
    these tests never call; skipped where it is not installed."""
    if not (SEMILEARN_DIR / "semilearn").is_dir():
        pytest.skip(f"semilearn is not installed in {SEMILEARN_DIR}: run `make bench-deps`")
    if str(SEMILEARN_DIR) not in sys.path:
        sys.path.insert(0, str(SEMILEARN_DIR))

    class _Unused:
        def __init__(self, *args, **kwargs):
            pass

    for name, attrs in {"skimage": {}, "skimage.util": {"montage": _Unused},
                        "torch.utils.tensorboard": {"SummaryWriter": _Unused}, "wandb": {},
                        "aim": {"Run": _Unused, "Text": _Unused}}.items():
        try:
            __import__(name)
        except Exception:
            module = types.ModuleType(name)
            module.__dict__.update(attrs)
            sys.modules[name] = module
    import semilearn.imb_algorithms as imb
    return imb


@pytest.fixture
def cpu_cuda(monkeypatch):
    """USB's hooks call ``.cuda(gpu)``; here that is the identity."""
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *args, **kwargs: self)


def test_debiaspl_p_hat_equals_usbs_margin_lags_and_tau_is_fixed(usb):
    from semilearn.imb_algorithms.debiaspl.debiaspl import DebiasPL as USBDebiasPL
    from semilearn.imb_algorithms.debiaspl.utils import DebiasPLConsistencyLoss, DebiasPLHook

    k, n, tau = 4, 8, 1.0
    theirs = USBDebiasPL.__new__(USBDebiasPL)  # only its compute_prob and hook are used
    theirs.num_classes, theirs.ema_m, theirs.ema_p, theirs.tau = k, 0.999, 0.999, tau
    theirs.p_hat = torch.ones(k) / k
    theirs.consistency_loss = DebiasPLConsistencyLoss(tau=tau)
    ours = method("fixmatch_debiaspl", [1] * k, num_ulb=n, tau=tau)
    g = torch.Generator().manual_seed(0)
    previous = ours.p_hat.clone()
    for it in range(5):
        weak = torch.randn(n, k, generator=g) * 3 + torch.tensor([2.0, 1.0, 0.0, -1.0])
        strong = torch.randn(n, k, generator=g)
        DebiasPLHook().before_train_step(theirs)
        probs = theirs.compute_prob(weak)
        out = ours.adjust_outputs(*step(weak, range(n), strong), it)
        # the same p_hat (a C-vector, not uniform) and the same pseudo-label probabilities
        assert torch.equal(theirs.p_hat, ours.p_hat)
        assert torch.equal(probs, torch.softmax(out.logits["ulb_weak"], dim=-1))
        # USB's margin: the previous step's p_hat, at tau 0.4 whatever debiaspl_tau is;
        # ours: this step's, at tau
        assert torch.equal(theirs.consistency_loss.p_hat, previous)
        assert theirs.consistency_loss.tau == 0.4
        assert torch.allclose(out.logits["ulb_strong"] - strong, tau * torch.log(ours.p_hat))
        previous = ours.p_hat.clone()
    assert float(ours.p_hat.max() - ours.p_hat.min()) > 1e-4


def test_saw_weights_equal_usbs_from_the_same_pool(usb, cpu_cuda):
    from semilearn.imb_algorithms.saw.utils import SAWWeightsHook

    classes = [0] * 6 + [1] * 3 + [2]
    pool = torch.tensor(one_hot_logits(classes, 3))
    alg = types.SimpleNamespace(num_classes=3, gpu=0, print_fn=lambda *args: None,
                                evaluate=lambda dest, return_logits: {
                                    "eval_ulb/logits": pool.numpy()})
    hook = SAWWeightsHook(y_lb_cnt=torch.tensor([6, 3, 1]), num_ulb=10)
    hook.before_run(alg)
    saw = method("fixmatch_saw", [6, 3, 1], num_ulb=10, update_every=2)
    assert alg.x_ulb_weights.tolist() == pytest.approx(saw.ulb_weights.tolist())
    # USB scores the pool after the epoch; ours has seen the pool in steps 0, 1 and updates
    # at step 2 before that step's batch (predicted all class 2) counts
    saw.adjust_outputs(*step(pool[:5], range(5)), 0)
    saw.adjust_outputs(*step(pool[5:], range(5, 10)), 1)
    hook.after_train_epoch(alg)
    saw.adjust_outputs(*step(one_hot_logits([2] * 5, 3), range(5)), 2)
    assert saw.ulb_weights.tolist() == pytest.approx(alg.x_ulb_weights.tolist(), rel=1e-5)


def test_adsh_usb_starts_at_exp_minus_tau(usb):
    from semilearn.imb_algorithms.adsh.utils import AdaptiveThresholdingHook

    hook = AdaptiveThresholdingHook(num_classes=3, tau_1=0.95)
    probs = torch.tensor([[0.38, 0.31, 0.31], [0.39, 0.30, 0.31], [0.96, 0.02, 0.02]])
    # USB before its first update: conf >= exp(-0.95) = 0.387 for every class
    assert hook.masking(None, probs, softmax_x_ulb=False).tolist() == [0.0, 1.0, 1.0]
    assert math.exp(-0.95) == pytest.approx(0.3867, abs=1e-4)
    adsh = method("fixmatch_adsh", [3, 2, 1], num_ulb=3)
    mask, _ = adsh.mask(probs, Batch(x_lb={}, y_lb=torch.tensor([0]), idx_ulb=torch.arange(3)))
    assert mask.tolist() == [0.0, 0.0, 1.0]  # ours: tau_1 = 0.95 from the first step


def test_darp_usb_hook_first_refines_at_205830(usb, cpu_cuda):
    from semilearn.imb_algorithms.darp.utils import DARPPseudoLabelingHook

    hook = DARPPseudoLabelingHook(warmup_epochs=200, alpha=2.0, iter_T=10, num_refine_iter=10,
                                  dataset_len=2, num_classes=2,
                                  target_disb=np.array([1.0, 1.0]))
    ours = darp_at_usb_length()
    weak = torch.tensor([[4.0, 0.0], [2.0, 0.0]])
    usb_first = our_first = None
    for it in range(205_815, 205_835):
        before = hook.pseudo_refine.clone()
        # USB's train(): 1024 batches an epoch (262,144 steps / 256 epochs), it and epoch
        # counted from 0
        labels = hook.refine_pseudo_labels(torch.tensor([0, 1]), torch.softmax(weak, 1), it,
                                           it // USB_EPOCH)
        if usb_first is None and not torch.equal(before, hook.pseudo_refine):
            usb_first = it
        if usb_first is None and it >= 201 * USB_EPOCH:  # USB: its uniform table, class 0
            assert labels.argmax(1).tolist() == [0, 0]
        ours.adjust_outputs(*step(weak, [0, 1]), it)
        if our_first is None and ours.refined_at >= 0:
            our_first = it
    assert usb_first == our_first == 205_830


def test_cossl_usb_warmup_ema_decays_twice_per_step(usb):
    from semilearn.imb_algorithms.cossl.cossl import CoSSL_Net
    from semilearn.imb_algorithms.cossl.utils import WeightEMA

    class Backbone(nn.Module):
        num_features = 2

        def __init__(self):
            super().__init__()
            self.body = nn.Linear(2, 2)
            self.classifier = nn.Linear(2, 3)

    model = CoSSL_Net(Backbone(), num_classes=3)
    keys = list(model.state_dict())
    assert "classifier.weight" in keys and "backbone.classifier.weight" in keys
    ema_model = copy.deepcopy(model)
    ema = WeightEMA(model, ema_model, lr=0.002, alpha=0.999, wd=False)
    start = ema_model.classifier.weight.detach().clone()
    with torch.no_grad():
        model.classifier.weight.add_(1.0)
    ema.step()
    live = model.classifier.weight.detach()
    twice = 0.999**2 * start + (1 - 0.999**2) * live
    assert torch.allclose(ema_model.classifier.weight, twice, atol=1e-6)
    assert not torch.allclose(ema_model.classifier.weight, 0.999 * start + 0.001 * live,
                              atol=1e-4)
