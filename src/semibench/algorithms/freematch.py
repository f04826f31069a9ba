"""FreeMatch (Wang et al., ICLR 2023): self-adaptive thresholds plus a fairness term.

    p = softmax(f(weak(u)))                                    (no gradient)
    update EMAs (momentum ema_p): time_p <- mean max p, p_model <- mean p,
                                  label_hist <- histogram of argmax p
    mask = 1[max p >= time_p * p_model[c] / max(p_model)],  c = argmax p
    L = CE(f(weak(x)), y) + lambda_u * mean(mask * CE(f(strong(u)), argmax p))
                          + lambda_e * L_f

Fairness term on the masked strong predictions q (computed only when some sample passes):
    h_s = histogram(argmax q) / n,  a = SumNorm(p_model / label_hist),
    b = SumNorm(mean(q) / h_s)  (1/0 -> 0, both scalers without gradient),
    L_f = sum_c a_c * log(b_c + 1e-12)

Sign convention, kept from USB on purpose: L_f is the *negative* cross-entropy of b against
a, so its value is <= 0, and ``lambda_e * L_f`` is added to the minimised loss (USB issues
#182, #231; the authors say minimising it pushes the mean prediction towards fairness).
lambda_e = 0.001 as in USB's committed configs (its argument default is 0.01). USB's classic-CV
SVHN configs set ``clip_thresh: True`` (and only those); ``config/classic_cv.yaml`` does too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from semibench.algorithms.base import ALGORITHMS, Algorithm, Batch, LossOutput, Outputs, param
from semibench.algorithms.losses import ce_loss, masked_mean, pseudo_label
from semibench.algorithms.thresholding import FreeMatchThresholds


def _sum_norm(x: torch.Tensor) -> torch.Tensor:
    return x / x.sum(dim=-1, keepdim=True)


def _inverse_or_zero(x: torch.Tensor) -> torch.Tensor:
    """1/x with 1/0 replaced by 0 (a class nobody predicts gets no weight)."""
    return torch.where(x > 0, 1.0 / x.clamp_min(torch.finfo(x.dtype).tiny), torch.zeros_like(x))


def fairness_loss(logits_s: torch.Tensor, mask: torch.Tensor, p_model: torch.Tensor,
                  label_hist: torch.Tensor) -> torch.Tensor:
    """FreeMatch's self-adaptive fairness term L_f (<= 0; see the module docstring)."""
    selected = logits_s[mask.bool()]
    if len(selected) == 0:
        return logits_s.sum() * 0.0
    q = torch.softmax(selected.float(), dim=-1)
    num_classes = q.shape[-1]
    hist_s = torch.bincount(q.argmax(dim=-1), minlength=num_classes).float()
    hist_s = hist_s / hist_s.sum()
    a = _sum_norm(p_model * _inverse_or_zero(label_hist)).detach()
    b = _sum_norm(q.mean(dim=0) * _inverse_or_zero(hist_s).detach())
    return (a * torch.log(b + 1e-12)).sum()


@dataclass
class FreeMatchParams:
    lambda_u: float = param(1.0, "weight lambda_u of the unsupervised loss", allowed="[0, inf)")
    lambda_e: float = param(0.001, "weight lambda_e of the fairness term (USB configs 0.001)",
                            allowed="[0, inf)")
    ema_p: float = param(0.999, "EMA momentum of time_p, p_model and label_hist",
                         allowed="[0, 1)")
    use_quantile: bool = param(False, "track the 0.8 quantile of the confidence, not its mean")
    clip_thresh: bool = param(False, "clip the global threshold time_p to at most 0.95 "
                              "(USB: classic-CV SVHN)")
    hard_label: bool = param(True, "hard (argmax) pseudo-labels; otherwise sharpened by T")
    T: float = param(0.5, "sharpening temperature of soft pseudo-labels", allowed="(0, inf)")


@ALGORITHMS.register("freematch")
class FreeMatch(Algorithm):
    name = "freematch"
    Params = FreeMatchParams
    lb_views = ("weak",)
    ulb_views = ("weak", "strong")
    target_views = frozenset({"ulb_weak"})

    def __init__(self, params: FreeMatchParams, **kwargs: Any):
        super().__init__(params, **kwargs)
        self.thresholds = FreeMatchThresholds(
            self.num_classes, params.ema_p, use_quantile=params.use_quantile,
            clip_thresh=params.clip_thresh)

    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        # Labelled cross-entropy
        sup = ce_loss(out.logits["lb_weak"].float(), batch.y_lb).mean()

        # Self-adaptive thresholds: update the EMAs first, then mask
        probs = torch.softmax(out.logits["ulb_weak"].detach().float(), dim=-1)
        self.thresholds.update(probs)
        mask = self.thresholds.mask(probs)
        target = pseudo_label(probs, hard=self.p.hard_label, temperature=self.p.T)

        # Consistency on the strong view, and the fairness term on the masked strong view
        logits_s = out.logits["ulb_strong"].float()
        unsup = masked_mean(ce_loss(logits_s, target), mask)
        fair = fairness_loss(logits_s, mask, self.thresholds.p_model, self.thresholds.label_hist)
        loss = sup + self.p.lambda_u * unsup + self.p.lambda_e * fair
        return LossOutput(
            loss=loss,
            log={"sup_loss": sup.detach(), "unsup_loss": unsup.detach(), "fair_loss": fair.detach(),
                 "global_threshold": self.thresholds.time_p.detach()},
            mask=mask,
            pseudo_label=probs.argmax(dim=-1),
        )

    def state_dict(self) -> dict[str, Any]:
        return self.thresholds.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.thresholds.load_state_dict(state)
