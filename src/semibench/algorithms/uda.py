"""UDA (Xie et al., NeurIPS 2020): confidence-masked consistency to a sharpened target, with
training-signal annealing (TSA) on the labelled loss.

    tsa(t) = thr(t) * (1 - 1/C) + 1/C,  t = iteration / num_iterations,
             thr: none 1 | linear t | exp e^{5(t-1)} | log 1 - e^{-5t}
    sup = mean(1[max softmax(f(weak(x))) <= tsa] * CE(f(weak(x)), y))   (divided by B)
    p = softmax(f(weak(u)))                                    (no gradient)
    mask = 1[max p >= p_cutoff]
    target = softmax(f(weak(u)) / T)    (sharpen=True, the paper; p itself if False)
    L = sup + lambda_u * mean(mask * CE(f(strong(u)), target))

Sharpening: USB before 0.3.0 sharpened with T=0.4; at HEAD it passes probabilities with
``softmax=False``, so T is ignored and the target is the unsharpened p. That is a bug (T is a
documented hyper-parameter that does nothing); the default here is the paper's sharpened
target, and ``sharpen=False`` reproduces USB HEAD.
TSA is off for vision and audio and "exp" for text, as in USB's configs (its NLP numbers are
near chance partly because of it). The consistency term is a cross-entropy, as in USB; the
paper's KL differs by the target's entropy, which has no gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from semibench.algorithms.base import ALGORITHMS, Algorithm, Batch, LossOutput, Outputs, param
from semibench.algorithms.losses import ce_loss, fixed_threshold_mask, masked_mean

TSA_SCHEDULES = ("none", "linear", "exp", "log")


def tsa_threshold(schedule: str, iteration: int, num_iterations: int, num_classes: int) -> float:
    """The labelled-confidence ceiling at ``iteration``: 1/C rising to 1 over the run."""
    if schedule == "none":
        return 1.0
    t = iteration / num_iterations
    if schedule == "linear":
        thr = t
    elif schedule == "exp":
        thr = math.exp(5.0 * (t - 1.0))
    elif schedule == "log":
        thr = 1.0 - math.exp(-5.0 * t)
    else:
        raise ValueError(f"tsa_schedule={schedule!r}; allowed: {', '.join(TSA_SCHEDULES)}")
    return thr * (1.0 - 1.0 / num_classes) + 1.0 / num_classes


@dataclass
class UDAParams:
    p_cutoff: float = param(0.8, "confidence threshold of the unlabelled mask", allowed="(0, 1]")
    lambda_u: float = param(1.0, "weight lambda_u of the unsupervised loss", allowed="[0, inf)")
    T: float = param(0.4, "sharpening temperature of the target", allowed="(0, inf)")
    sharpen: bool = param(True, "sharpen the target by T (paper, USB < 0.3.0); false = USB "
                          "HEAD's unsharpened target")
    tsa_schedule: str = param("none", "training-signal annealing of the labelled loss",
                              choices=TSA_SCHEDULES)


@ALGORITHMS.register("uda")
class UDA(Algorithm):
    name = "uda"
    Params = UDAParams
    param_defaults: ClassVar[dict[str, dict[str, Any]]] = {"text": {"tsa_schedule": "exp"}}
    lb_views = ("weak",)
    ulb_views = ("weak", "strong")
    target_views = frozenset({"ulb_weak"})

    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        # Labelled cross-entropy, annealed: confident-enough labelled samples are dropped
        logits_lb = out.logits["lb_weak"].float()
        tsa = tsa_threshold(self.p.tsa_schedule, iteration, self.num_iterations,
                            self.num_classes)
        sup_mask = (torch.softmax(logits_lb.detach(), dim=-1).max(dim=-1).values <= tsa)
        sup = masked_mean(ce_loss(logits_lb, batch.y_lb), sup_mask.to(logits_lb.dtype))

        # Confidence mask and (sharpened) soft target from the weak view
        logits_w = out.logits["ulb_weak"].detach().float()
        probs = torch.softmax(logits_w, dim=-1)
        mask = fixed_threshold_mask(probs, self.p.p_cutoff)
        target = torch.softmax(logits_w / self.p.T, dim=-1) if self.p.sharpen else probs

        # Consistency on the strong view
        unsup = masked_mean(ce_loss(out.logits["ulb_strong"].float(), target), mask)
        loss = sup + self.p.lambda_u * unsup
        return LossOutput(
            loss=loss,
            log={"sup_loss": sup.detach(), "unsup_loss": unsup.detach(), "tsa": tsa,
                 "sup_mask_ratio": sup_mask.float().mean().detach()},
            mask=mask,
            pseudo_label=probs.argmax(dim=-1),
        )
