"""SoftMatch (Chen et al., ICLR 2023): truncated-Gaussian soft weights with uniform
distribution alignment.

    p = softmax(f(weak(u)))                                     (no gradient)
    p~ = DA(p): p * (1/C) / p_model, renormalised; p_model = EMA of mean p (first batch
         initialises it; updated before aligning)
    mu, var <- EMA of mean / unbiased variance of max p~          (updated before weighting)
    w = exp(-min(max p~ - mu, 0)^2 / (2 var / n_sigma^2))         (1 above the mean)
    y_hat = argmax p   -- the *non-aligned* prediction, as USB does (explicit in its code)
    L = CE(f(weak(x)), y) + lambda_u * mean(w * CE(f(strong(u)), y_hat))

USB uses the global (``per_class=False``) statistics; its per-class path is broken (it reads
``self.args`` inside the hook). ``per_class=True`` here implements that path's intent; see
``TruncatedGaussianWeights`` for how classes absent from a batch are handled.

``dist_align: false`` deviates from USB on purpose: USB stores its ``dist_align`` flag but
aligns unconditionally, so the flag does nothing there; here it switches the alignment off
(mu, var and the weights then come from the raw p). The default (true) is USB's behaviour.
With ``hard_label: false`` the target is softmax(weak logits / T), as in USB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from semibench.algorithms.base import ALGORITHMS, Algorithm, Batch, LossOutput, Outputs, param
from semibench.algorithms.distalign import DistAlignEMA
from semibench.algorithms.losses import ce_loss, masked_mean, pseudo_label
from semibench.algorithms.thresholding import TruncatedGaussianWeights


@dataclass
class SoftMatchParams:
    lambda_u: float = param(1.0, "weight lambda_u of the unsupervised loss", allowed="[0, inf)")
    ema_p: float = param(0.999, "EMA momentum of mu, var and the alignment's p_model",
                         allowed="[0, 1)")
    n_sigma: float = param(2.0, "width of the Gaussian in standard deviations",
                           allowed="(0, inf)")
    per_class: bool = param(False, "per-class mu and var (USB's broken path, as intended)")
    dist_align: bool = param(True, "uniform distribution alignment before weighting (USB "
                             "aligns whatever its flag says)")
    hard_label: bool = param(True, "hard (argmax) pseudo-labels; otherwise sharpened by T")
    T: float = param(0.5, "sharpening temperature of soft pseudo-labels", allowed="(0, inf)")


@ALGORITHMS.register("softmatch")
class SoftMatch(Algorithm):
    name = "softmatch"
    Params = SoftMatchParams
    lb_views = ("weak",)
    ulb_views = ("weak", "strong")
    target_views = frozenset({"ulb_weak"})

    def __init__(self, params: SoftMatchParams, **kwargs: Any):
        super().__init__(params, **kwargs)
        self.dist_align = DistAlignEMA(self.num_classes, params.ema_p, target="uniform")
        self.weights = TruncatedGaussianWeights(
            self.num_classes, params.ema_p, n_sigma=params.n_sigma, per_class=params.per_class)

    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        # Labelled cross-entropy
        sup = ce_loss(out.logits["lb_weak"].float(), batch.y_lb).mean()

        # Soft weights from the aligned weak predictions
        probs = torch.softmax(out.logits["ulb_weak"].detach().float(), dim=-1)
        aligned = self.dist_align(probs) if self.p.dist_align else probs
        self.weights.update(aligned)
        weight = self.weights(aligned)
        # ... but the pseudo-label comes from the raw, non-aligned prediction (as USB)
        target = pseudo_label(probs, hard=self.p.hard_label, temperature=self.p.T)

        # Weighted consistency on the strong view
        unsup = masked_mean(ce_loss(out.logits["ulb_strong"].float(), target), weight)
        loss = sup + self.p.lambda_u * unsup
        return LossOutput(
            loss=loss,
            log={"sup_loss": sup.detach(), "unsup_loss": unsup.detach(),
                 "mu": self.weights.mu.mean().detach(), "var": self.weights.var.mean().detach()},
            mask=weight,
            pseudo_label=probs.argmax(dim=-1),
        )

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.weights.state_dict(), "dist_align": self.dist_align.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weights.load_state_dict(state["weights"])
        self.dist_align.load_state_dict(state["dist_align"])
