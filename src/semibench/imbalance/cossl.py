"""CoSSL (Fan et al., CVPR 2022): co-learning of the representation and a balanced classifier.

The base algorithm trains the backbone and its own classifier unchanged. A second linear
classifier, the *teacher* head ``g`` (``model.ssl_heads["cossl"]``), is trained on the EMA
model's features with class-balanced data and predicts at evaluation once it exists.

Warm-up, once, before step ``floor(warmup * T)`` (a milestone; USB: epoch 200 of 256), from
the EMA model's features ``f`` (eval mode):

    imprint:  W_c = m_c / |m_c|,  m_c = mean labelled weak-view feature of class c (no bias)
    p(x)    = softmax(W f(weak(x)))                       (labelled and unlabelled samples)
    TFE: for every class c with n_c < n_max, n_max - n_c synthetic features
        s = lam * f(weak(x_a)) + (1 - lam) * f_b,   lam ~ Beta(0.75, 0.75),   target c
      x_a a random labelled sample of class c; f_b in turn the features of all other
      samples (labelled of another class: weak view; unlabelled: strong view) in decreasing
      order of their p(class c)
    a fresh linear classifier, trained on labelled + TFE features by Adam (lr 1e-3, weight
    decay ``tfe_warm_wd`` on the weights, batches of ``tfe_warm_bs``, ``tfe_warm_steps``
    steps), with an EMA of its weights (``tfe_warm_ema_decay``): the classifier goes into the
    live model's teacher head, its EMA into the EMA model's.

Every step after the warm-up adds the teacher loss (no gradient reaches the backbone):

    (x_i, y_i)  i = 1..B   drawn with replacement, P(i) proportional to 1 / n_{y_i}
    u_i         the step's first B strong unlabelled views
    f_i = lam_i * f(aug(x_i)) + (1 - lam_i) * f(u_i)   with probability (n_max - n_{y_i}) / n_max,
          lam_i ~ U(max_lam, 1);  f(aug(x_i)) otherwise      (aug: ``tfe_augment``)
    L = L_base + mean_i CE(g(f_i), y_i)

The base's loss and pseudo-labels are its own (from its classifier), as in USB. Evaluation
predicts with ``g`` on the EMA model's features after the warm-up, with the base's classifier
before it: the head carries an ``active`` flag (a buffer, so ``model_best.pt`` from before the
warm-up is evaluated as it was recorded).

Where it differs from USB (``imb_algorithms/cossl``):

- one optimiser: the teacher head is one of the model's heads, stepped by the trainer's
  optimiser at its learning rate and schedule. USB steps it twice per step, with its main SGD
  and a second SGD at ``cossl_tfe_warm_lr`` 0.02; both share momentum, Nesterov and weight
  decay 5e-4, so that is one SGD step at lr + 0.02 (0.05 in USB's constant-lr imbalanced
  runs). ``tfe_warm_lr`` is therefore not a parameter here.
- the mix-up probability is the labelled class's, the paper's rule. USB indexes it with
  ``label.argmax()`` of a 0-d integer label, always 0, i.e. class 0's probability, 0 on its
  splits (class 0 is the head class): USB's teacher loss never mixes features.
- the unlabelled features of the teacher loss come from the step's own strong views (USB
  draws a separate batch of ``cossl_tfe_u_ratio`` x B and uses its first B, so
  ``tfe_u_ratio`` has no effect there and is not a parameter here); the EMA model runs in
  eval mode, one pass (USB's EMA model is in train mode: batch statistics, two passes).
- the warm-up is a fraction of the run (``warmup``, as DARP's), its classifier training a
  number of steps (``tfe_warm_steps``; USB: ``cossl_tfe_warm_epoch`` 10 x ``num_eval_iter``
  1024); Adam's batch is at most the feature set's size, other samples are reused in turn
  when fewer than needed, and a class without labels gets no imprint and no TFE features
  (USB's loader would be empty, its index out of range, its imprint NaN).
- the warm-up classifier's EMA decays at ``tfe_warm_ema_decay`` (0.999) per Adam step. USB's
  ``WeightEMA`` walks ``state_dict().values()``, where ``CoSSL_Net`` lists the classifier
  twice (``backbone.classifier`` and the alias ``classifier``, one tensor), so each step
  applies the EMA twice: its decay is 0.999^2 = 0.998001 per step. That is an aliasing
  accident, not a setting, so it is not followed (config/offline_lt.yaml's CoSSL keeps its
  number); ``tfe_warm_ema_decay: 0.998001`` reproduces it.
- random numbers come from generators seeded by (seed, stream, step), so a resumed run draws
  the same; with no EMA model (``ema_m`` 0) the live model is the teacher.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semibench.algorithms.base import Batch, LossOutput, Outputs, param
from semibench.imbalance.base import IMBALANCE, HeadPredictor, ImbalanceMethod
from semibench.rng import step_generator

#: generator streams (issue 13): the warm-up's feature passes and draws, the teacher loss
STREAM_IMPRINT, STREAM_LB, STREAM_ULB_WEAK, STREAM_ULB_STRONG = 13_001, 13_002, 13_003, 13_004
STREAM_WARMUP, STREAM_STEP = 13_005, 13_006
#: USB's fixed settings of the warm-up: Adam's learning rate, TFE's Beta(0.75, 0.75)
ADAM_LR, TFE_BETA = 1e-3, 0.75
HEAD = "cossl"


@dataclass
class CoSSLParams:
    warmup: float = param(0.78125, "fraction of the run before the teacher head is built "
                          "(USB: warm_epoch 200 of 256 epochs)", allowed="(0, 1)")
    max_lam: float = param(0.6, "teacher loss: mix-up weight lam ~ U(max_lam, 1) of the "
                           "labelled feature", allowed="[0, 1]")
    tfe_augment: str = param("strong", "view of the teacher loss's class-balanced labelled "
                             "batch", choices=("strong", "weak"))
    tfe_warm_steps: int = param(10240, "Adam steps of the warm-up classifier (USB: "
                                "tfe_warm_epoch 10 x num_eval_iter 1024)", allowed="[1, inf)")
    tfe_warm_ema_decay: float = param(0.999, "EMA decay of the warm-up classifier",
                                      allowed="[0, 1)")
    tfe_warm_wd: float = param(5e-4, "weight decay of the warm-up classifier's weights",
                               allowed="[0, inf)")
    tfe_warm_bs: int = param(64, "batch size of the warm-up classifier", allowed="[1, inf)")


class TeacherHead(nn.Module):
    """The teacher classifier, with ``active``: whether evaluation predicts with it."""

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(num_features, num_classes)
        self.register_buffer("active", torch.zeros((), dtype=torch.bool))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)

    @torch.no_grad()
    def install(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Take these weights (in place: the EMA's shadow is the module's own parameters)."""
        self.fc.weight.copy_(weight)
        self.fc.bias.copy_(bias)
        self.active.fill_(True)


class TeacherPredictor(HeadPredictor):
    """The teacher head's logits where it is active, the model's own otherwise (no host
    sync: both are computed, the flag selects)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.model.forward_features(x)
        head = self.model.ssl_heads[self.head]
        return torch.where(head.active, head(features), self.model.forward_head(features))


# --------------------------------------------------------------------------- the maths
def imprint_weights(features: torch.Tensor, labels: torch.Tensor,
                    num_classes: int) -> torch.Tensor:
    """Row c: the mean feature of class c, L2-normalised (zero for a class without samples)."""
    labels = labels.to(features.device)
    sums = torch.zeros(num_classes, features.shape[1], dtype=features.dtype,
                       device=features.device).index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=num_classes).to(features.dtype)
    means = sums / counts.clamp_min(1)[:, None]
    return means / means.norm(dim=1, keepdim=True).clamp_min(1e-12)


def mixup_probabilities(counts: torch.Tensor) -> torch.Tensor:
    """(n_max - n_c) / n_max: how often a class-c feature is mixed in the teacher loss."""
    counts = counts.double()
    return ((counts.max() - counts) / counts.max().clamp_min(1)).float()


def tfe_features(lb_feats: torch.Tensor, lb_labels: torch.Tensor, lb_probs: torch.Tensor,
                 ulb_feats: torch.Tensor, ulb_probs: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The labelled features and TFE's synthetic ones (every class up to the largest
    class's count), with their classes; see the module docstring."""
    device = lb_feats.device
    num_classes = lb_probs.shape[1]
    labels = lb_labels.to(device)
    counts = torch.bincount(lb_labels.cpu(), minlength=num_classes)
    every = torch.cat([lb_feats, ulb_feats])
    probs = torch.cat([lb_probs, ulb_probs]).float()
    ulb_rows = len(lb_feats) + torch.arange(len(ulb_feats), device=device)
    rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))
    feats, targets = [lb_feats], [labels]
    for c in range(num_classes):
        need, own = int(counts.max() - counts[c]), int(counts[c])
        candidates = torch.cat([torch.nonzero(labels != c).flatten(), ulb_rows])
        if need == 0 or own == 0 or len(candidates) == 0:
            continue
        order = torch.sort(probs[candidates, c], descending=True, stable=True).indices
        b = every[candidates[order[torch.arange(need, device=device) % len(order)]]]
        pick = torch.randint(own, (need,), generator=generator).to(device)
        a = lb_feats[labels == c][pick]
        lam = torch.from_numpy(rng.beta(TFE_BETA, TFE_BETA, size=need)).to(
            device=device, dtype=lb_feats.dtype)[:, None]
        feats.append(lam * a + (1 - lam) * b)
        targets.append(torch.full((need,), c, dtype=labels.dtype, device=device))
    return torch.cat(feats), torch.cat(targets)


@dataclass
class Classifier:
    weight: torch.Tensor
    bias: torch.Tensor


def train_classifier(feats: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                     steps: int, batch_size: int, weight_decay: float, ema_decay: float,
                     generator: torch.Generator) -> tuple[Classifier, Classifier]:
    """A fresh linear classifier (PyTorch's default initialisation, drawn from
    ``generator``) trained by Adam on shuffled passes over (feats, labels); the classifier
    and the EMA of its weights."""
    n, dim = feats.shape
    device = feats.device
    bound = 1.0 / math.sqrt(dim)

    def uniform(*shape: int) -> torch.Tensor:
        return ((torch.rand(*shape, generator=generator) * 2 - 1) * bound).to(device)

    weight = uniform(num_classes, dim).requires_grad_(True)
    bias = uniform(num_classes).requires_grad_(True)
    ema = [weight.detach().clone(), bias.detach().clone()]
    optimizer = torch.optim.Adam([{"params": [weight], "weight_decay": weight_decay},
                                  {"params": [bias], "weight_decay": 0.0}], lr=ADAM_LR)
    feats, labels = feats.detach().float(), labels.to(device)
    batch = min(batch_size, n)
    per_pass = n // batch
    order = torch.empty(0, dtype=torch.long)
    with torch.enable_grad():
        for step in range(steps):
            k = step % per_pass
            if k == 0:
                order = torch.randperm(n, generator=generator).to(device)
            idx = order[k * batch:(k + 1) * batch]
            loss = F.cross_entropy(F.linear(feats[idx], weight, bias), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                torch._foreach_mul_(ema, ema_decay)
                torch._foreach_add_(ema, [weight, bias], alpha=1.0 - ema_decay)
    return Classifier(weight.detach(), bias.detach()), Classifier(*ema)


def mixup_lambdas(labels: torch.Tensor, probabilities: torch.Tensor, max_lam: float,
                  generator: torch.Generator) -> torch.Tensor:
    """Per labelled sample: lam ~ U(max_lam, 1) with probability ``probabilities[label]``,
    else 1 (the feature unchanged)."""
    draw = torch.rand(len(labels), generator=generator)
    lam = max_lam + (1.0 - max_lam) * torch.rand(len(labels), generator=generator)
    return torch.where(draw < probabilities[labels.cpu()], lam, torch.ones_like(lam))


def teacher_loss(head: nn.Module, lb_feats: torch.Tensor, ulb_feats: torch.Tensor,
                 labels: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """mean_i CE(g(lam_i f_i + (1 - lam_i) u_i), y_i); no gradient reaches the features."""
    with torch.no_grad():
        lam = lam.to(device=lb_feats.device, dtype=lb_feats.dtype)[:, None]
        mixed = lam * lb_feats + (1 - lam) * ulb_feats
    return F.cross_entropy(head(mixed).float(), labels.to(lb_feats.device))


# --------------------------------------------------------------------------- the method
@IMBALANCE.register("cossl")
class CoSSL(ImbalanceMethod):
    name = "cossl"
    Params = CoSSLParams
    #: the teacher loss's unlabelled features are the step's strong views
    needs_views = frozenset({"ulb_strong"})

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.ema_model: nn.Module | None = None
        #: whether the warm-up ran: the teacher loss is added from then on (checkpointed)
        self.warmed = False
        #: the labelled set's stored-input indices, labels and sampling weights 1 / n_y
        self._labelled: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.mix_prob = torch.zeros(self.num_classes)

    @property
    def warm_iteration(self) -> int:
        return max(1, int(self.p.warmup * self.num_iterations))

    def build_modules(self, num_features: int) -> dict[str, nn.Module]:
        return {HEAD: TeacherHead(num_features, self.num_classes)}

    def attach(self, model: nn.Module, ema_model: nn.Module | None, info: Any) -> None:
        super().attach(model, ema_model, info)
        self.ema_model = ema_model
        self._labelled = None  # the labelled set may have changed
        self.mix_prob = mixup_probabilities(info.lb_class_counts)

    def training_data(self) -> Any:
        """The trainer's :class:`semibench.train.access.TrainingData` (``attach``'s
        ``info.data``, so a run resumed after the warm-up has it too)."""
        data = getattr(self.info, "data", None)
        if data is None:
            raise RuntimeError("cossl: the teacher loss draws labelled batches through the "
                               "trainer's TrainingData, which attach (DataInfo.data) did not "
                               "give")
        return data

    # ------------------------------------------------------------------ warm-up
    def milestones(self) -> tuple[int, ...]:
        return (self.warm_iteration,)

    def on_milestone(self, iteration: int, data: Any) -> None:
        if iteration != self.warm_iteration:
            return
        teacher = data.teacher
        lb_index, lb_labels = data.labelled()
        ulb_index = data.unlabelled()
        imprint_feats, _ = data.features(teacher, lb_index, "weak", STREAM_IMPRINT)
        weight = imprint_weights(imprint_feats, lb_labels, self.num_classes)
        lb_feats, _ = data.features(teacher, lb_index, "weak", STREAM_LB)
        ulb_weak, _ = data.features(teacher, ulb_index, "weak", STREAM_ULB_WEAK)
        ulb_probs = torch.softmax(ulb_weak @ weight.T, dim=-1)
        del ulb_weak
        ulb_strong, _ = data.features(teacher, ulb_index, "strong", STREAM_ULB_STRONG)
        gen = step_generator(data.seed, STREAM_WARMUP, iteration)
        feats, targets = tfe_features(lb_feats, lb_labels, torch.softmax(lb_feats @ weight.T,
                                                                         dim=-1),
                                      ulb_strong, ulb_probs, gen)
        trained, averaged = train_classifier(
            feats, targets, self.num_classes, steps=self.p.tfe_warm_steps,
            batch_size=self.p.tfe_warm_bs, weight_decay=self.p.tfe_warm_wd,
            ema_decay=self.p.tfe_warm_ema_decay, generator=gen)
        data.model.ssl_heads[HEAD].install(trained.weight, trained.bias)
        if teacher is not data.model:
            teacher.ssl_heads[HEAD].install(averaged.weight, averaged.bias)
        self.warmed = True

    # ------------------------------------------------------------------ every step
    def labelled_set(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._labelled is None:
            index, labels = self.training_data().labelled()
            counts = torch.bincount(labels, minlength=self.num_classes).double()
            self._labelled = index, labels, 1.0 / counts[labels]
        return self._labelled

    def step_loss(self, batch: Batch, iteration: int) -> torch.Tensor:
        """The teacher loss of step ``iteration`` (module docstring)."""
        data = self.training_data()
        index, labels, weights = self.labelled_set()
        gen = step_generator(data.seed, STREAM_STEP, iteration)
        n = len(batch.y_lb)
        pos = torch.multinomial(weights, n, replacement=True, generator=gen)
        y = labels[pos]
        x = data.view(index[pos], self.p.tfe_augment, gen)
        u = batch.x_ulb["strong"]
        u = u[:n] if len(u) >= n else u[torch.arange(n) % len(u)]
        lam = mixup_lambdas(y, self.mix_prob, self.p.max_lam, gen)
        teacher = self.ema_model if self.ema_model is not None else self.model
        was_training = teacher.training
        teacher.eval()
        try:
            with torch.no_grad():
                if x.shape[1:] == u.shape[1:]:
                    f_x, f_u = teacher.forward_features(torch.cat([x, u.to(x.device)])).split(n)
                else:
                    f_x, f_u = teacher.forward_features(x), teacher.forward_features(u)
        finally:
            teacher.train(was_training)
        return teacher_loss(self.model.ssl_heads[HEAD], f_x, f_u, y, lam)

    def adjust_loss(self, result: LossOutput, out: Outputs, batch: Batch,
                    iteration: int) -> LossOutput:
        if not self.warmed:
            return result
        loss = self.step_loss(batch, iteration)
        result.loss = result.loss + loss
        result.log["tea_loss"] = loss.detach()
        return result

    def predictor(self, model: nn.Module) -> nn.Module:
        return TeacherPredictor(model, HEAD)

    def state_dict(self) -> dict[str, Any]:
        return {"warmed": self.warmed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.warmed = bool(state["warmed"])
