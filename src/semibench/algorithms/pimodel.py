"""Π-model (Laine & Aila, ICLR 2017; USB's ``pimodel``): two stochastic passes over two
independent weak views of an unlabelled sample must agree.

    z_w = f(weak(u)),  z_2 = f(weak2(u))      (both passes train-mode, BN statistics frozen)
    ramp = clip(it / (unsup_warm_up * iterations), 0, 1)
    L = CE(f(weak(x)), y) + lambda_u * ramp * mean_i mean_c (softmax(z_2) - softmax(z_w).detach())^2

As in USB, the target side is detached (the paper lets the gradient flow through both sides),
every view is its own forward pass whatever ``train.use_cat`` says, and only the labelled pass
updates the batch-norm running statistics. USB's NLP configs also evaluate the Π-model's EMA
weights (ema_m 0.999, a config-generator slip meant for MeanTeacher); SemiBench keeps the
trainer's default (no EMA): set ``train.ema_m: 0.999`` to reproduce that.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from semibench.algorithms.base import ALGORITHMS, Algorithm, Batch, LossOutput, Outputs, param
from semibench.algorithms.bn import forward_per_view
from semibench.algorithms.losses import ce_loss, linear_ramp, mse_probs


@dataclass
class PiModelParams:
    lambda_u: float = param(10.0, "weight lambda_u of the consistency loss", allowed="[0, inf)")
    unsup_warm_up: float = param(0.4, "lambda_u ramps up linearly over this fraction of the "
                                 "iterations (0 = no ramp)", allowed="[0, inf)")


@ALGORITHMS.register("pimodel")
class PiModel(Algorithm):
    name = "pimodel"
    Params = PiModelParams
    lb_views = ("weak",)
    ulb_views = ("weak", "weak2")

    def forward(self, model: nn.Module, x: dict[str, torch.Tensor], cat: bool) -> Outputs:
        return forward_per_view(model, x)  # USB ignores use_cat here: separate passes

    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        # Labelled cross-entropy
        sup = ce_loss(out.logits["lb_weak"], batch.y_lb).mean()

        # Consistency between the two weak views, the first one as a fixed target
        target = torch.softmax(out.logits["ulb_weak"].detach().float(), dim=-1)
        unsup = mse_probs(out.logits["ulb_weak2"].float(), target).mean()

        ramp = linear_ramp(iteration, self.num_iterations, self.p.unsup_warm_up)
        loss = sup + self.p.lambda_u * ramp * unsup
        return LossOutput(loss=loss, log={"sup_loss": sup.detach(), "unsup_loss": unsup.detach(),
                                          "unsup_ramp": ramp})
