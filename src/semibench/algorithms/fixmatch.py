"""FixMatch (Sohn et al., NeurIPS 2020): weak-to-strong pseudo-labelling with a fixed
confidence threshold.

    p = softmax(f(weak(u)))                       (no gradient)
    mask = 1[max p >= p_cutoff];  y_hat = argmax p (or p sharpened by T if not hard_label)
    L = CE(f(weak(x)), y) + lambda_u * mean(mask * CE(f(strong(u)), y_hat))

Soft pseudo-labels (``hard_label: false``, off in every USB config) deviate from USB on
purpose: here the target is p sharpened by T, i.e. softmax(logits / T), as the FixMatch
paper's sharpening ablation does; USB passes the probabilities with ``softmax=False``, so its
T is ignored and the target is the unsharpened p. ``T: 1.0`` reproduces USB. FlexMatch and
DeFixMatch inherit this.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semibench.algorithms.base import ALGORITHMS, Algorithm, Batch, LossOutput, Outputs, param
from semibench.algorithms.losses import ce_loss, fixed_threshold_mask, masked_mean, pseudo_label


@dataclass
class FixMatchParams:
    p_cutoff: float = param(0.95, "confidence threshold tau", allowed="(0, 1]")
    lambda_u: float = param(1.0, "weight lambda_u of the unsupervised loss", allowed="[0, inf)")
    hard_label: bool = param(True, "hard (argmax) pseudo-labels; otherwise softmax "
                             "sharpened by T (USB ignores T there)")
    T: float = param(0.5, "sharpening temperature of soft pseudo-labels", allowed="(0, inf)")


@ALGORITHMS.register("fixmatch")
class FixMatch(Algorithm):
    name = "fixmatch"
    Params = FixMatchParams
    lb_views = ("weak",)
    ulb_views = ("weak", "strong")
    target_views = frozenset({"ulb_weak"})

    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        # Labelled cross-entropy
        sup = ce_loss(out.logits["lb_weak"], batch.y_lb).mean()

        # Pseudo-labels from the weak view, confidence mask
        probs = torch.softmax(out.logits["ulb_weak"].detach().float(), dim=-1)
        mask, mask_log = self.mask(probs, batch)
        target = pseudo_label(probs, hard=self.p.hard_label, temperature=self.p.T)

        # Consistency on the strong view
        unsup = masked_mean(ce_loss(out.logits["ulb_strong"].float(), target), mask)
        loss = sup + self.p.lambda_u * unsup
        return LossOutput(
            loss=loss,
            log={"sup_loss": sup.detach(), "unsup_loss": unsup.detach(), **mask_log},
            mask=mask,
            pseudo_label=probs.argmax(dim=-1),
        )

    def mask(self, probs: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Which pseudo-labels count: a fixed confidence threshold. Variants (FlexMatch)
        override only this; the second value is extra log entries."""
        return fixed_threshold_mask(probs, self.p.p_cutoff), {}
