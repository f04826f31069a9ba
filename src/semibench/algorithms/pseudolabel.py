"""Pseudo-Label (Lee, ICML-W 2013; USB's ``pseudolabel``): confident predictions on unlabelled
samples become hard labels for the very same predictions.

    z = f(weak(u))                               (train-mode, BN statistics frozen, with gradient)
    mask = 1[max softmax(z) >= p_cutoff];  y_hat = argmax z
    ramp = clip(it / (unsup_warm_up * iterations), 0, 1)
    L = CE(f(weak(x)), y) + lambda_u * ramp * mean(mask * CE(z, y_hat))

Only the weak unlabelled view is used; the mask and labels carry no gradient, the CE does. As in
USB, each view is its own forward pass whatever ``train.use_cat`` says.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from semibench.algorithms.base import ALGORITHMS, Algorithm, Batch, LossOutput, Outputs, param
from semibench.algorithms.bn import forward_per_view
from semibench.algorithms.losses import ce_loss, fixed_threshold_mask, linear_ramp, masked_mean


@dataclass
class PseudoLabelParams:
    p_cutoff: float = param(0.95, "confidence threshold", allowed="(0, 1]")
    lambda_u: float = param(1.0, "weight lambda_u of the pseudo-label loss", allowed="[0, inf)")
    unsup_warm_up: float = param(0.4, "lambda_u ramps up linearly over this fraction of the "
                                 "iterations (0 = no ramp)", allowed="[0, inf)")


@ALGORITHMS.register("pseudolabel")
class PseudoLabel(Algorithm):
    name = "pseudolabel"
    Params = PseudoLabelParams
    lb_views = ("weak",)
    ulb_views = ("weak",)

    def forward(self, model: nn.Module, x: dict[str, torch.Tensor], cat: bool) -> Outputs:
        return forward_per_view(model, x)

    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        # Labelled cross-entropy
        sup = ce_loss(out.logits["lb_weak"], batch.y_lb).mean()

        # Hard pseudo-labels of the confident unlabelled predictions, fitted by those predictions
        logits = out.logits["ulb_weak"].float()
        probs = torch.softmax(logits.detach(), dim=-1)
        mask = fixed_threshold_mask(probs, self.p.p_cutoff)
        y_hat = probs.argmax(dim=-1)
        unsup = masked_mean(ce_loss(logits, y_hat), mask)

        ramp = linear_ramp(iteration, self.num_iterations, self.p.unsup_warm_up)
        loss = sup + self.p.lambda_u * ramp * unsup
        return LossOutput(
            loss=loss,
            log={"sup_loss": sup.detach(), "unsup_loss": unsup.detach(), "unsup_ramp": ramp},
            mask=mask,
            pseudo_label=y_hat,
        )
