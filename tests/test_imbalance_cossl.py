"""CoSSL: TFE on a hand-made feature example, the mix-up probabilities, the teacher loss by
hand, and the warm-up milestone in the real trainer (the teacher head predicts after it, a
resume at and after it is exact)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from semibench.algorithms.base import Batch, DataInfo, LossOutput
from semibench.compose import create_algorithm, parse_label
from semibench.config import ConfigError, check_config, run_config
from semibench.imbalance.cossl import (
    imprint_weights,
    mixup_lambdas,
    mixup_probabilities,
    teacher_loss,
    tfe_features,
    train_classifier,
)
from semibench.train.loop import Trainer
from tests.alg_helpers import ce
from tests.helpers.imbalance import LONG_TAILED, TINY
from tests.helpers.nets import FeatModel  # forward_features = identity
from tests.helpers.runs import states_equal

#: a few Adam steps at the warm-up, so a CPU run stays short
QUICK = {"tfe_warm_steps": 30, "tfe_warm_bs": 16}


def settings(algorithm: str, imbalance: dict | None = None, **train) -> dict:
    cfg = check_config({"algorithms": [algorithm], "seeds": [0],
                        "imbalance_params": {"cossl": {**QUICK, **(imbalance or {})}},
                        "tasks": {"mnist": {"num_labels": [8], "long_tailed": LONG_TAILED,
                                            "train": {**TINY, **train}}}})
    return run_config(cfg, "mnist", 8, algorithm, 0)


# --------------------------------------------------------------------------- the maths
def test_imprint_is_the_normalised_class_mean():
    feats = torch.tensor([[3.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    w = imprint_weights(feats, torch.tensor([0, 0, 1, 1]), 3)
    # class 0: mean (2, 0) -> (1, 0); class 1: mean (0, 1) -> (0, 1); class 2: no samples
    assert w.tolist() == [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]


def _on_segment(s, a, b):
    """lam with s = lam * a + (1 - lam) * b, or None if s is not on the segment [b, a]."""
    s, a, b = (torch.tensor(v, dtype=torch.float64) for v in (s, a, b))
    d = a - b
    lam = float((s - b) @ d / (d @ d))
    if 0 <= lam <= 1 and torch.allclose(lam * a + (1 - lam) * b, s, atol=1e-5):
        return lam
    return None


def test_tfe_by_hand():
    # labelled counts 3, 1, 2: class 1 gets 2 synthetic features, class 2 gets 1
    lb = [[1.0, 0.0], [1.0, 0.1], [1.0, -0.1], [0.0, 1.0], [-1.0, 0.0], [-1.0, 0.5]]
    y = [0, 0, 0, 1, 2, 2]
    # p(class 1): sample 0 0.8, ...; p(class 2): sample 3 (class 1) 0.7 is the highest
    lb_probs = [[0.2, 0.8, 0.0], [0.8, 0.1, 0.1], [0.8, 0.1, 0.1], [0.3, 0.0, 0.7],
                [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]]
    ulb = [[5.0, 5.0], [6.0, 6.0], [7.0, 7.0]]
    ulb_probs = [[0.7, 0.2, 0.1], [0.0, 0.9, 0.1], [0.2, 0.5, 0.3]]
    t = torch.tensor
    feats, targets = tfe_features(t(lb), t(y), t(lb_probs), t(ulb), t(ulb_probs),
                                  torch.Generator().manual_seed(0))
    # every class at the largest class's count
    assert torch.bincount(targets).tolist() == [3, 3, 3]
    assert torch.equal(feats[:6], t(lb)) and targets[:6].tolist() == y  # the labelled first
    assert targets[6:].tolist() == [1, 1, 2]
    # class 1: others by p(class 1): unlabelled (6, 6) 0.9, labelled (1, 0) 0.8, ...; the one
    # class-1 feature (0, 1) is the other end of each
    lams = [_on_segment(feats[6].tolist(), [0.0, 1.0], [6.0, 6.0]),
            _on_segment(feats[7].tolist(), [0.0, 1.0], [1.0, 0.0])]
    # class 2: the other end is labelled (0, 1) (0.7), the first end one of class 2's own
    ends = [_on_segment(feats[8].tolist(), a, [0.0, 1.0]) for a in ([-1.0, 0.0], [-1.0, 0.5])]
    lams.append(next(v for v in ends if v is not None))
    assert all(v is not None for v in lams)
    # the same generator gives the same features
    again, _ = tfe_features(t(lb), t(y), t(lb_probs), t(ulb), t(ulb_probs),
                            torch.Generator().manual_seed(0))
    assert torch.equal(again, feats)


def test_tfe_balanced_counts_add_nothing():
    feats = torch.randn(4, 3)
    out, targets = tfe_features(feats, torch.tensor([0, 1, 0, 1]), torch.full((4, 2), 0.5),
                                torch.randn(2, 3), torch.full((2, 2), 0.5),
                                torch.Generator().manual_seed(0))
    assert torch.equal(out, feats) and targets.tolist() == [0, 1, 0, 1]


def test_warmup_classifier_learns_separable_features_and_averages():
    feats = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0, 1, 1])
    trained, averaged = train_classifier(feats, labels, 2, steps=400, batch_size=64,
                                         weight_decay=5e-4, ema_decay=0.9,
                                         generator=torch.Generator().manual_seed(0))
    assert (feats @ trained.weight.T + trained.bias).argmax(1).tolist() == [0, 0, 1, 1]
    # decay 0.9 over 400 steps: the average follows the weights closely, yet differs
    assert not torch.equal(averaged.weight, trained.weight)
    assert torch.allclose(averaged.weight, trained.weight, atol=0.05)

    def first_step(seed):
        return train_classifier(feats, labels, 2, steps=1, batch_size=64, weight_decay=0.0,
                                ema_decay=0.9, generator=torch.Generator().manual_seed(seed))[0]

    assert torch.equal(first_step(0).weight, first_step(0).weight)  # the same seed, the same
    assert not torch.equal(first_step(0).weight, first_step(1).weight)


def test_mixup_probabilities_and_lambdas():
    assert mixup_probabilities(torch.tensor([8, 6, 2])).tolist() == [0.0, 0.25, 0.75]
    # probability 0: never mixed (lam 1); probability 1: always, lam in [max_lam, 1)
    labels = torch.tensor([0, 1] * 50)
    lam = mixup_lambdas(labels, torch.tensor([0.0, 1.0]), 0.6, torch.Generator().manual_seed(0))
    assert (lam[labels == 0] == 1).all()
    assert ((lam[labels == 1] >= 0.6) & (lam[labels == 1] < 1)).all()
    # probability 0.25: about a quarter mixed
    labels = torch.zeros(8000, dtype=torch.long)
    lam = mixup_lambdas(labels, torch.tensor([0.25]), 0.6, torch.Generator().manual_seed(1))
    assert float((lam < 1).float().mean()) == pytest.approx(0.25, abs=0.02)


def test_teacher_loss_by_hand():
    head = nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        head.bias.copy_(torch.tensor([0.0, 0.5]))
    f_x = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    f_u = torch.tensor([[0.0, 4.0], [3.0, 3.0]])
    lam = torch.tensor([0.75, 1.0])  # the first mixed, the second kept
    loss = teacher_loss(head, f_x, f_u, torch.tensor([0, 1]), lam)
    # mixed: 0.75 (2, 0) + 0.25 (0, 4) = (1.5, 1) -> logits (1.5, 1.5); kept: (0, 1.5)
    assert float(loss.detach()) == pytest.approx((ce([1.5, 1.5], 0) + ce([0.0, 1.5], 1)) / 2, rel=1e-6)
    loss.backward()
    assert head.weight.grad is not None


# --------------------------------------------------------------------------- the method
class FakeData:
    """TrainingData's surface the teacher loss reads: stored inputs are features here."""

    seed = 0

    def __init__(self, stored, labels):
        self.stored, self.labels = torch.tensor(stored), torch.tensor(labels)

    def labelled(self):
        return torch.arange(len(self.labels)), self.labels.clone()

    def view(self, index, view, generator):
        return self.stored[index]


def method_with(counts_labels, stored, **imbalance):
    alg = create_algorithm(parse_label("fixmatch_cossl"), None, imbalance, num_classes=2,
                           num_iterations=10, num_ulb=4)
    method = alg.method
    heads = method.build_modules(2)
    with torch.no_grad():  # identity teacher head
        heads["cossl"].fc.weight.copy_(torch.eye(2))
        heads["cossl"].fc.bias.zero_()
    model = FeatModel(heads)
    data = FakeData(stored, counts_labels)
    alg.attach(model, None, DataInfo(domain="image", num_classes=2, num_lb=len(counts_labels),
                                     num_ulb=4, lb_class_counts=torch.bincount(
                                         torch.tensor(counts_labels), minlength=2), data=data))
    return method, model


def test_adjust_loss_adds_the_teacher_loss_after_the_warmup():
    # labels 0, 0, 0, 1: weights 1/3 and 1; every class-c feature is 2 e_c and max_lam = 1,
    # so whatever the draws, each term is CE((2, 0), 0) = CE((0, 2), 1)
    method, _ = method_with([0, 0, 0, 1], [[2.0, 0.0]] * 3 + [[0.0, 2.0]], max_lam=1.0)
    assert method.labelled_set()[2].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0])
    assert method.mix_prob.tolist() == pytest.approx([0.0, 2 / 3])
    batch = Batch(x_lb={}, y_lb=torch.tensor([0, 1, 1]),
                  x_ulb={"weak": torch.zeros(6, 2), "strong": torch.full((6, 2), 9.0)})
    base = LossOutput(loss=torch.tensor(1.0), log={})
    assert float(method.adjust_loss(base, None, batch, 8).loss) == 1.0  # not warmed: none
    method.warmed = True
    result = method.adjust_loss(LossOutput(loss=torch.tensor(1.0), log={}), None, batch, 8)
    tea = ce([2.0, 0.0], 0)
    assert float(result.log["tea_loss"]) == pytest.approx(tea, rel=1e-6)
    assert result.log["tea_loss"].ndim == 0 and not result.log["tea_loss"].requires_grad
    assert float(result.loss.detach()) == pytest.approx(1.0 + tea, rel=1e-6)
    # the same step draws the same batch; the state says it is warmed
    again = method.adjust_loss(LossOutput(loss=torch.tensor(1.0), log={}), None, batch, 8)
    assert torch.equal(again.loss.detach(), result.loss.detach())
    assert method.state_dict() == {"warmed": True}


def test_class_balanced_draws():
    method, _ = method_with([0] * 9 + [1], [[1.0, 0.0]] * 9 + [[0.0, 1.0]])
    _, labels, weights = method.labelled_set()
    draws = labels[torch.multinomial(weights, 4000, replacement=True,
                                     generator=torch.Generator().manual_seed(0))]
    assert float(draws.float().mean()) == pytest.approx(0.5, abs=0.03)  # 9 : 1 -> 1 : 1


def test_predictor_follows_the_head_flag():
    method, model = method_with([0, 1], [[1.0, 0.0], [0.0, 1.0]])
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
        model.head.bias.zero_()
    x = torch.tensor([[3.0, 1.0]])
    predictor = method.predictor(model)
    assert predictor(x).tolist() == [[1.0, 3.0]]  # the base's classifier before the warm-up
    model.ssl_heads["cossl"].install(torch.eye(2), torch.zeros(2))
    assert predictor(x).tolist() == [[3.0, 1.0]]  # the teacher head after it


# --------------------------------------------------------------------------- the trainer
@pytest.mark.parametrize("algorithm, ema_m", [("fixmatch_cossl", 0.99),
                                               ("remixmatch_cossl", 0.99),
                                               ("fixmatch_cossl", 0.0)])  # the live teacher
def test_warmup_milestone_in_the_trainer(algorithm, ema_m, lt_data, tmp_path):
    prepared, split = lt_data
    trainer = Trainer(settings(algorithm, ema_m=ema_m), prepared, split, tmp_path)
    assert trainer.milestones == [3]  # floor(0.78125 * 4)
    teacher = trainer.ema.model if ema_m else trainer.model
    x = trainer.views["eval"](trainer.x_test[:6], torch.Generator().manual_seed(0))

    def logits():
        teacher.eval()
        with torch.no_grad():
            f = teacher.forward_features(x)
            return (trainer.algorithm.predictor(teacher)(x), teacher.forward_head(f),
                    teacher.ssl_heads["cossl"](f))

    predicted, own, _ = logits()
    assert torch.equal(predicted, own)  # the base's classifier before the warm-up
    metrics = trainer.fit()
    assert metrics["last"]["iteration"] == 4
    # the teacher loss from the warm-up on: absent at iteration 2, logged at 4
    assert "tea_loss" not in trainer.curve[0] and trainer.curve[1]["tea_loss"] > 0
    assert trainer.algorithm.method.warmed
    assert bool(teacher.ssl_heads["cossl"].active)
    assert bool(trainer.model.ssl_heads["cossl"].active)
    predicted, own, head = logits()
    assert torch.equal(predicted, head) and not torch.equal(predicted, own)


def test_resume_at_and_after_the_warmup_is_exact(lt_data, tmp_path):
    prepared, split = lt_data
    run = settings("fixmatch_cossl", {"max_lam": 0.0}, iterations=8, eval_every=8, ema_m=0.99)
    first = Trainer(run, prepared, split, tmp_path)
    assert first.milestones == [6]
    for step in range(6):
        first.train_step(step)
    first.checkpoints.save(first._state(6, 0.0))  # with its SHA-256 record
    # a run resumed just before the milestone repeats the warm-up exactly
    second = Trainer(run, prepared, split, tmp_path)
    assert second.start_iteration == 6 and not second.algorithm.method.warmed
    first._milestone(6)
    second._milestone(6)
    assert states_equal(first.model.state_dict(), second.model.state_dict())
    assert states_equal(first.ema.model.state_dict(), second.ema.model.state_dict())
    first.train_step(6)
    first.checkpoints.save(first._state(7, 0.0))  # with its SHA-256 record
    # a run resumed after the milestone gets no milestone call: it reads the checkpointed
    # flag and reaches the data through attach's DataInfo
    third = Trainer(run, prepared, split, tmp_path)
    assert third.start_iteration == 7 and third.algorithm.method.warmed
    assert states_equal(third.algorithm.state_dict(), first.algorithm.state_dict())
    first.train_step(7)
    third.train_step(7)
    means = first.logs.means()
    assert means["tea_loss"] > 0
    assert means == pytest.approx(third.logs.means(), rel=1e-6, abs=1e-7)


# --------------------------------------------------------------------------- settings
@pytest.mark.parametrize("params, message", [
    ({"warmup": 1.0}, r"imbalance_params.cossl.warmup=1.0: must be in \(0, 1\)"),
    ({"tfe_augment": "medium"}, r"imbalance_params.cossl.tfe_augment='medium': must be one of"),
    ({"max_lam": -0.5}, r"imbalance_params.cossl.max_lam=-0.5: must be in \[0, 1\]"),
    ({"tfe_warm_bs": 0}, r"imbalance_params.cossl.tfe_warm_bs=0: must be >= 1"),
    ({"tfe_warm_lr": 0.02}, r"imbalance_params.cossl: unknown parameter\(s\) tfe_warm_lr"),
])
def test_bad_params_are_one_line_errors(params, message):
    with pytest.raises(ConfigError, match=message) as err:
        check_config({"algorithms": ["fixmatch_cossl"], "tasks": {"mnist": {}},
                      "imbalance_params": {"cossl": params}})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("base", ["supervised", "mixmatch"])
def test_bases_without_strong_views_are_refused(base):
    with pytest.raises(ConfigError, match=rf"{base}_cossl: cossl needs the base's ulb_strong"):
        check_config({"algorithms": [f"{base}_cossl"], "tasks": {"mnist": {}}})
