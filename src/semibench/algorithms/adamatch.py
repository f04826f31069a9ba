"""AdaMatch (Berthelot et al., ICLR 2022) as USB runs it for SSL: a relative confidence
threshold plus distribution alignment towards the labelled prediction.

    p_lb = softmax(f(weak(x)))  and  p = softmax(f(weak(u)))   (no gradient)
    p_target <- EMA of mean p_lb (starts uniform);  p_model <- EMA of mean p (first batch)
    p~ = normalise(p * p_target / p_model)
    tau = p_cutoff * mean_i max p_lb_i        (the current labelled batch, no EMA)
    mask = 1[max p~ >= tau],  y_hat = argmax p~
    L = CE(f(weak(x)), y) + lambda_u * mean(mask * CE(f(strong(u)), y_hat))

As in USB there is no lambda_u warm-up and no random logit interpolation (the paper's domain
adaptation parts). With ``hard_label=False`` the target is p~ sharpened by T (USB passes the
aligned probabilities with ``softmax=False``, which ignores T; its configs use hard labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from semibench.algorithms.base import ALGORITHMS, Algorithm, Batch, LossOutput, Outputs, param
from semibench.algorithms.distalign import DistAlignEMA
from semibench.algorithms.losses import ce_loss, masked_mean, pseudo_label


@dataclass
class AdaMatchParams:
    p_cutoff: float = param(0.95, "relative threshold: fraction of the labelled batch's mean "
                            "confidence", allowed="(0, 1]")
    lambda_u: float = param(1.0, "weight lambda_u of the unsupervised loss", allowed="[0, inf)")
    ema_p: float = param(0.999, "EMA momentum of the alignment's p_model and p_target",
                         allowed="[0, 1)")
    hard_label: bool = param(True, "hard (argmax) pseudo-labels; otherwise aligned "
                             "probabilities sharpened by T")
    T: float = param(0.5, "sharpening temperature of soft pseudo-labels", allowed="(0, inf)")


def relative_threshold(probs_lb: torch.Tensor, p_cutoff: float) -> torch.Tensor:
    """AdaMatch's tau: p_cutoff times the mean top-class confidence on the labelled batch."""
    return p_cutoff * probs_lb.max(dim=-1).values.mean()


@ALGORITHMS.register("adamatch")
class AdaMatch(Algorithm):
    name = "adamatch"
    Params = AdaMatchParams
    lb_views = ("weak",)
    ulb_views = ("weak", "strong")
    target_views = frozenset({"ulb_weak"})

    def __init__(self, params: AdaMatchParams, **kwargs: Any):
        super().__init__(params, **kwargs)
        self.dist_align = DistAlignEMA(self.num_classes, params.ema_p, target="model")

    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        # Labelled cross-entropy
        logits_lb = out.logits["lb_weak"].float()
        sup = ce_loss(logits_lb, batch.y_lb).mean()

        # Align the weak predictions towards the labelled prediction, relative threshold
        probs_lb = torch.softmax(logits_lb.detach(), dim=-1)
        probs = torch.softmax(out.logits["ulb_weak"].detach().float(), dim=-1)
        aligned = self.dist_align(probs, probs_lb)
        tau = relative_threshold(probs_lb, self.p.p_cutoff)
        mask = (aligned.max(dim=-1).values >= tau).to(aligned.dtype)
        target = pseudo_label(aligned, hard=self.p.hard_label, temperature=self.p.T)

        # Consistency on the strong view
        unsup = masked_mean(ce_loss(out.logits["ulb_strong"].float(), target), mask)
        loss = sup + self.p.lambda_u * unsup
        return LossOutput(
            loss=loss,
            log={"sup_loss": sup.detach(), "unsup_loss": unsup.detach(), "threshold": tau.detach()},
            mask=mask,
            pseudo_label=aligned.argmax(dim=-1),
        )

    def state_dict(self) -> dict[str, Any]:
        return {"dist_align": self.dist_align.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dist_align.load_state_dict(state["dist_align"])
