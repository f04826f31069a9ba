"""SAW (Lai et al., ICML 2022): smoothed adaptive weights for the labelled and unlabelled loss.

Each labelled sample's loss is weighted by its class's effective-number weight, and each
pseudo-labelled sample's by its pseudo-class's weight, computed from the pseudo-label counts
of the unlabelled set:

    N = mean_c n_c,  beta = (N - 1) / N,  w_c = (1 - beta) / (1 - beta^{n_c}),
    w <- C * w / sum(w)                       (effective numbers, Cui et al. 2019)
    L_sup = mean_i w^lb_{y_i} CE_i,   L_unsup = mean_j mask_j w^ulb_{y_hat_j} CE_j

How the weights reach the base without changing it: each labelled row of the base's logits,
and each strong-view row, has its *gradient* scaled by its weight (forward unchanged). Where a
logit row feeds only its weighted term, as in FixMatch, that is exactly the gradient of the
weighted loss; the logged losses stay the base's unweighted values. The unlabelled weights
start uniform and are recomputed every ``update_every`` steps (USB: each 1024-step epoch) from
each unlabelled sample's latest weak-view prediction, kept per sample (USB scores the whole
set with the eval view instead); a class without pseudo-labels counts as 1, as in USB.

Order, as USB's: the update at step k x ``update_every`` reads the table as it stood before
that step, i.e. the predictions of steps < k x ``update_every``, and only then records the
step's own predictions; its weights apply from that step on. USB scores the pool in
``after_train_epoch`` and sets the weights in ``before_train_epoch``, both before the next
epoch's first step sees its batch; Adsh here updates before recording too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from semibench.algorithms.base import Batch, Outputs, base_view, param
from semibench.imbalance.base import IMBALANCE, ImbalanceMethod


@dataclass
class SAWParams:
    update_every: int = param(1024, "steps between updates of the unlabelled weights (USB: "
                              "an epoch)", allowed="[1, inf)")


def effective_weights(counts: torch.Tensor) -> torch.Tensor:
    """The normalised effective-number weights of the module docstring."""
    n = counts.double()
    mean = n.mean()
    beta = (mean - 1) / mean
    w = (1 - beta) / (1 - beta**n)
    return (w / w.sum() * len(n)).float()


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the backward multiplies row i of the gradient by ``weight[i]``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weight)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (weight,) = ctx.saved_tensors
        return grad * weight.to(grad.dtype)[:, None], None


def scale_grad(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return _ScaleGrad.apply(x, weight) if x.requires_grad else x


@IMBALANCE.register("saw")
class SAW(ImbalanceMethod):
    name = "saw"
    Params = SAWParams
    needs_views = frozenset({"ulb_weak"})

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.ulb_weights = torch.ones(self.num_classes)
        #: each unlabelled sample's latest weak-view class (-1: not seen yet)
        self.pred = torch.full((self.num_ulb,), -1, dtype=torch.long)

    def lb_weights(self) -> torch.Tensor:
        return effective_weights(self.info.lb_class_counts)

    def update_weights(self) -> None:
        seen = self.pred[self.pred >= 0]
        counts = torch.bincount(seen, minlength=self.num_classes).clamp_min(1)
        self.ulb_weights = effective_weights(counts)

    def adjust_outputs(self, out: Outputs, batch: Batch, iteration: int) -> Outputs:
        if iteration > 0 and iteration % self.p.update_every == 0:
            self.update_weights()  # from the table before this step, as Adsh's thresholds
        weak = out.logits["ulb_weak"].detach()
        y_hat = weak.argmax(dim=-1)
        if batch.idx_ulb is not None:
            self.pred[batch.idx_ulb.cpu()] = y_hat.cpu()
        logits = dict(out.logits)
        if "lb_weak" in logits:
            w_lb = self.lb_weights().to(weak.device)[batch.y_lb]
            logits["lb_weak"] = scale_grad(logits["lb_weak"], w_lb)
        w_ulb = self.ulb_weights.to(weak.device)[y_hat]
        for key, z in out.logits.items():
            if key.startswith("ulb_") and base_view(key[4:]) == "strong":
                logits[key] = scale_grad(z, w_ulb)
        return dataclasses.replace(out, logits=logits)

    def state_dict(self) -> dict[str, Any]:
        return {"ulb_weights": self.ulb_weights.clone(), "pred": self.pred.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ulb_weights = state["ulb_weights"].clone()
        self.pred = state["pred"].clone()
