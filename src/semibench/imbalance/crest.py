"""CReST and CReST+ (Wei et al., CVPR 2021): class-rebalancing self-training.

Training runs in G generations (``num_gens``), each a fresh model trained for 1/G of the
run's iterations with its own learning-rate schedule (the trainer's generations). Between two
generations the finished model (its EMA) labels the whole unlabelled set, and the labelled set
of the next generation is the split's labelled set plus, per predicted class, its most
confident pseudo-labelled samples, fewer for frequent classes:

    classes ranked by labelled count, r = 0 for the most frequent (head) class
    mu  = (1 / gamma) ** (1 / (C - 1)),   gamma = largest / smallest labelled count
    take the top  floor(n_pred(c) * mu ** ((C - 1 - r(c)) / alpha))  predictions of class c

so the rarest class keeps all its predictions and the head class a (1 / gamma) ** (1 / alpha)
share (alpha = 3). The base algorithm then trains on that labelled set unchanged.

CReST+ (``crestplus``; USB's ``crest+``) adds progressive distribution alignment of the weak
view's prediction, with the target tempered from the labelled distribution (t = 1) in the
first generation to ``dist_align_t`` (0.5) in the last:

    p_model <- m * p_model + (1 - m) * mean_j p_j            (m = 0.999, once per step)
    target  =  pi ** t / sum(pi ** t),   t = 1 - (1 - dist_align_t) * g / (G - 1)
    p_j     <- normalise(p_j * (target + 1e-6) / (p_model + 1e-6))

With a base that aligns its own predictions (ReMixMatch, AdaMatch, SoftMatch), the progressive
alignment takes the place of the base's, as USB's CReST+ hook replaces the base's
``DistAlignHook``; with any other base it aligns the weak view's prediction before the base
reads it.

Faithful to USB (``imb_algorithms/crest``): defaults (6 generations, alpha 3, t 0.5), USB's
run length per generation (its configs: 6 x 65,536 iterations, set by ``train.iterations``),
a new model, optimiser and schedule per generation, pseudo-labels from the EMA model, the
alignment state kept across generations, model selection over all generations. Where it
differs: USB ranks classes by their index (class 0 is the head class in its splits); here by
the labelled counts, the paper's intent, which is the same on USB's splits.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from semibench.algorithms.base import Algorithm, Batch, Outputs, param
from semibench.algorithms.distalign import DistAlignEMA
from semibench.imbalance.base import IMBALANCE, ImbalanceMethod


@dataclass
class CReSTParams:
    num_gens: int = param(6, "generations (fresh models); train.iterations is split evenly",
                          allowed="[1, inf)")
    alpha: float = param(3.0, "sampling exponent: the head class keeps (1/gamma)^(1/alpha) of "
                         "its pseudo-labels", allowed="(0, inf)")


@dataclass
class CReSTPlusParams(CReSTParams):
    dist_align_t: float = param(0.5, "CReST+: temperature of the alignment target in the last "
                                "generation", allowed="(0, 1]")
    ema_p: float = param(0.999, "CReST+: momentum of the model's mean prediction",
                         allowed="[0, 1)")


def crest_selection(score: torch.Tensor, pred: torch.Tensor, lb_counts: torch.Tensor,
                    alpha: float) -> torch.Tensor:
    """Positions (into ``score``/``pred``) of the pseudo-labelled samples CReST adds: per
    predicted class, its most confident ``floor(n * mu ** ((C - 1 - rank) / alpha))``."""
    num_classes = len(lb_counts)
    counts = lb_counts.double().clamp_min(1)
    # rank 0 = most labelled; a stable sort keeps the class order among equal counts
    order = torch.sort(-counts, stable=True).indices
    rank = torch.empty_like(order)
    rank[order] = torch.arange(num_classes)
    gamma = float(counts.max() / counts.min())
    mu = (1.0 / gamma) ** (1.0 / max(num_classes - 1, 1))
    picked = []
    for c in range(num_classes):
        members = torch.nonzero(pred == c).flatten()
        if len(members) == 0:
            continue
        share = mu ** ((num_classes - 1 - int(rank[c])) / alpha)
        take = int(len(members) * share)
        best = torch.sort(-score[members], stable=True).indices[:take]
        picked.append(members[best])
    return torch.cat(picked) if picked else torch.empty(0, dtype=torch.long)


@IMBALANCE.register("crest")
class CReST(ImbalanceMethod):
    name = "crest"
    Params = CReSTParams
    generations_param = "num_gens"
    #: progressive distribution alignment (CReST+)
    progressive = False

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.generations = getattr(self.p, self.generations_param)
        self.generation = 0
        self.added = 0
        #: CReST+'s alignment, and whether it replaced the base's own
        self.aligner: ProgressiveAlign | None = None
        self.replaces_base = False
        #: the split's labelled class counts (the alignment target), from the first attach:
        #: later ones see the pseudo-labelled set
        self.split_counts: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return self.num_iterations // self.generations

    def on_milestone(self, iteration: int, data: Any) -> None:
        if iteration % self.length:
            return
        self.generation = iteration // self.length
        ulb = data.unlabelled()
        _, logits = data.features(data.teacher, ulb, "eval")
        score, pred = torch.softmax(logits.float(), dim=-1).max(dim=-1)
        lb_index, lb_labels = data.split_labelled()
        counts = torch.bincount(lb_labels, minlength=data.num_classes)
        chosen = crest_selection(score.cpu(), pred.cpu(), counts, self.p.alpha)
        self.added = len(chosen)
        data.set_labelled(torch.cat([lb_index, ulb[chosen]]),
                          torch.cat([lb_labels, pred.cpu()[chosen]]))

    # ------------------------------------------------------------------ CReST+
    def alignment_target(self) -> torch.Tensor:
        """The labelled distribution tempered by this generation's t."""
        if self.split_counts is None:
            raise RuntimeError("crestplus: attach() was not called")
        counts = self.split_counts.double()
        last = max(self.generations - 1, 1)
        t = 1.0 - (1.0 - self.p.dist_align_t) * min(self.generation, last) / last
        target = (counts / counts.sum()) ** t
        return target / target.sum()

    def attach(self, model: Any, ema_model: Any, info: Any) -> None:
        super().attach(model, ema_model, info)
        if self.split_counts is None:
            self.split_counts = info.lb_class_counts.clone()

    def bind(self, base: Algorithm) -> None:
        if not self.progressive:
            return
        if self.aligner is None:
            self.aligner = ProgressiveAlign(self.num_classes, self.p.ema_p,
                                            self.alignment_target)
        if isinstance(getattr(base, "dist_align", None), DistAlignEMA):
            base.dist_align = self.aligner  # type: ignore[attr-defined]
            self.replaces_base = True

    def adjust_outputs(self, out: Outputs, batch: Batch, iteration: int) -> Outputs:
        if self.aligner is None or self.replaces_base:
            return out
        weak = out.logits["ulb_weak"]
        aligned = self.aligner(torch.softmax(weak.detach().float(), dim=-1))
        logits = dict(out.logits)
        logits["ulb_weak"] = torch.log(aligned.clamp_min(1e-30)).to(weak.dtype)
        return dataclasses.replace(out, logits=logits)

    def state_dict(self) -> dict[str, Any]:
        return {"generation": self.generation, "added": self.added,
                "align": self.aligner.state_dict() if self.aligner is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generation, self.added = int(state["generation"]), int(state["added"])
        if self.aligner is not None and state["align"] is not None:
            self.aligner.load_state_dict(state["align"])


class ProgressiveAlign(DistAlignEMA):
    """Distribution alignment towards the current generation's tempered target."""

    def __init__(self, num_classes: int, momentum: float, target: Any) -> None:
        super().__init__(num_classes, momentum, "uniform")
        self.target_now = target

    def __call__(self, probs: torch.Tensor, probs_lb: torch.Tensor | None = None) -> torch.Tensor:
        self.p_target = self.target_now().to(probs.device, torch.float32)
        return super().__call__(probs)


@IMBALANCE.register("crestplus")
class CReSTPlus(CReST):
    """CReST+: CReST with progressive distribution alignment (USB's ``crest+``)."""

    name = "crestplus"
    Params = CReSTPlusParams
    progressive = True
    needs_views = frozenset({"ulb_weak"})
