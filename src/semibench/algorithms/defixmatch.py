"""DeFixMatch (Schmutz et al., "Don't fear the unlabelled: safe semi-supervised learning via
debiasing", ICLR 2023): FixMatch whose pseudo-label loss is debiased by the same loss
computed on the labelled data.

    sup    = (CE(f(weak(x)), y) + CE(f(strong(x)), y)) / 2
    L_u    = mean_u(1[max p(weak(u)) >= tau] * CE(f(strong(u)), argmax p(weak(u))))
    L_anti = mean_x(1[max p(weak(x)) >= tau] * CE(f(strong(x)), argmax p(weak(x))))
    L = sup + lambda_u * (L_u - L_anti),   lambda_u = 0.5, tau = 0.95

The labelled batch has a strong view too (the domain's strong augmentation: USB used the
image strong transform, a random one of the two back-translations for text, and the strong
waveform augmentation for audio). At USB HEAD DeFixMatch is broken: it is missing from
``ALL_MODULES`` (so unregistered) and PR #201 deleted the labelled strong views from the
datasets; SemiBench implements it as it was before that PR. Pseudo-labels (of both sets) are
taken from detached weak logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semibench.algorithms.base import ALGORITHMS, Algorithm, Batch, LossOutput, Outputs, param
from semibench.algorithms.fixmatch import FixMatchParams
from semibench.algorithms.losses import ce_loss, fixed_threshold_mask, masked_mean, pseudo_label


@dataclass
class DeFixMatchParams(FixMatchParams):
    lambda_u: float = param(0.5, "weight lambda_u of the debiased loss L_u - L_anti",
                            allowed="[0, inf)")


@ALGORITHMS.register("defixmatch")
class DeFixMatch(Algorithm):
    name = "defixmatch"
    Params = DeFixMatchParams
    lb_views = ("weak", "strong")
    ulb_views = ("weak", "strong")
    target_views = frozenset({"ulb_weak"})

    def _fixmatch(self, logits_w: torch.Tensor, logits_s: torch.Tensor):
        """FixMatch's masked pseudo-label loss of one set; returns (loss, mask, argmax)."""
        probs = torch.softmax(logits_w.detach().float(), dim=-1)
        mask = fixed_threshold_mask(probs, self.p.p_cutoff)
        target = pseudo_label(probs, hard=self.p.hard_label, temperature=self.p.T)
        return masked_mean(ce_loss(logits_s.float(), target), mask), mask, probs.argmax(dim=-1)

    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        # Labelled cross-entropy on both views
        sup = 0.5 * (ce_loss(out.logits["lb_weak"], batch.y_lb).mean()
                     + ce_loss(out.logits["lb_strong"], batch.y_lb).mean())
        # FixMatch on the unlabelled data, and the same construction on the labelled data
        unsup, mask, y_hat = self._fixmatch(out.logits["ulb_weak"], out.logits["ulb_strong"])
        anti, _, _ = self._fixmatch(out.logits["lb_weak"], out.logits["lb_strong"])
        loss = sup + self.p.lambda_u * (unsup - anti)
        return LossOutput(
            loss=loss,
            log={"sup_loss": sup.detach(), "unsup_loss": unsup.detach(), "anti_loss": anti.detach()},
            mask=mask,
            pseudo_label=y_hat,
        )
