"""ConfMatch, an example plugin: FixMatch whose unlabelled terms are weighted by confidence
instead of cut at a threshold (a SemiBench algorithm written outside the package).

    p = softmax(f(weak(u)))                      (no gradient)
    w = (max p) ** gamma  where max p >= p_min, else 0
    L = CE(f(weak(x)), y) + lambda_u * mean(w * CE(f(strong(u)), argmax p))

Use it with ``plugins: [examples/my_algorithm/confmatch.py]`` and ``algorithms: [confmatch]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semibench.algorithms.base import ALGORITHMS, Algorithm, Batch, LossOutput, Outputs, param
from semibench.algorithms.losses import ce_loss


@dataclass
class ConfMatchParams:
    p_min: float = param(0.5, "confidence below which a pseudo-label gets no weight",
                         allowed="[0, 1]")
    gamma: float = param(2.0, "sharpness of the confidence weight", allowed="[0, inf)")
    lambda_u: float = param(1.0, "weight of the unsupervised loss", allowed="[0, inf)")


@ALGORITHMS.register("confmatch")
class ConfMatch(Algorithm):
    name = "confmatch"
    Params = ConfMatchParams
    lb_views = ("weak",)                      # views the trainer makes of each labelled sample
    ulb_views = ("weak", "strong")            # ... and of each unlabelled sample
    target_views = frozenset({"ulb_weak"})    # forwarded without gradient

    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        sup = ce_loss(out.logits["lb_weak"], batch.y_lb).mean()

        probs = torch.softmax(out.logits["ulb_weak"].float(), dim=-1)
        conf, pseudo = probs.max(dim=-1)
        weight = conf.pow(self.p.gamma) * (conf >= self.p.p_min)

        unsup = (weight * ce_loss(out.logits["ulb_strong"].float(), pseudo)).mean()
        return LossOutput(loss=sup + self.p.lambda_u * unsup,
                          log={"sup_loss": sup.detach(), "unsup_loss": unsup.detach()},
                          mask=weight, pseudo_label=pseudo)
