"""DebiasPL (Wang et al., CVPR 2022): debiased pseudo-labels by causal logit adjustment.

An EMA of the mean weak-view prediction estimates the model's bias towards frequent classes;
the pseudo-labels are taken from logits with that bias removed, and the student's logits get
the matching adaptive margin:

    p_hat <- m * p_hat + (1 - m) * mean_j softmax(z_w_j)      (a C-vector, once per step)
    z_w   <- z_w - tau * log p_hat       (the base pseudo-labels / masks from these)
    z_s   <- z_s + tau * log p_hat       (adaptive marginal loss on the strong view)

with m = ``ema_p`` = 0.999 and tau = 0.4 (USB's defaults); p_hat starts uniform.

semilearn 0.3.2 (USB's PyPI release, the version this project runs beside its own) computes
the same p_hat: ``probs.mean(dim=0)``, a C-vector, once per ``compute_prob`` call, and run on
the same weak logits its p_hat and its debiased pseudo-label probabilities equal these
bit for bit, step for step. It reads the *model's* EMA momentum (``self.ema_m``) where
``ema_p`` belongs; its configs set both to 0.999, so the update is the same. USB's main
branch is different: since commit 639cfbf (March 2024, as in 0.3.0 before) it averages
``probs.mean()``, a scalar equal to 1/C for any prediction, so there p_hat never leaves
uniform and the adjustment is a constant shift (DebiasPL is its base algorithm). USB also
updates p_hat in every ``compute_prob`` call (once per step with FixMatch); here it is
updated once per step from the weak view, before it is used.

Two details of semilearn 0.3.2's adaptive margin (also on USB's main) are not followed
here: the formula above uses one p_hat and one tau for both terms, and the default
benchmark's ``fixmatch_debiaspl`` keeps its recorded numbers:

- the margin lags one step: ``DebiasPLHook.before_train_step`` hands the loss the p_hat of
  the previous step, and ``compute_prob`` then replaces p_hat by a new tensor, so the strong
  view's margin uses p_hat before this step's update while the pseudo-labels use it after.
  Here both use the updated p_hat (one step moves p_hat by 1 - m = 0.1 % of its distance
  to the step's mean prediction).
- the margin's tau is hard-coded: ``DebiasPLConsistencyLoss`` stores ``self.tau = 0.4``
  whatever ``debiaspl_tau`` is, so only the pseudo-label adjustment follows that setting.
  Here ``tau`` sets both; with the default 0.4 the two agree.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from semibench.algorithms.base import Batch, Outputs, base_view, param
from semibench.imbalance.base import IMBALANCE, ImbalanceMethod


@dataclass
class DebiasPLParams:
    tau: float = param(0.4, "strength tau of the logit adjustment", allowed="[0, inf)")
    ema_p: float = param(0.999, "momentum of the EMA of the mean prediction", allowed="[0, 1)")


@IMBALANCE.register("debiaspl")
class DebiasPL(ImbalanceMethod):
    name = "debiaspl"
    Params = DebiasPLParams
    #: so MixMatch, MeanTeacher and Pi-model, which USB refuses too, are refused here
    needs_views = frozenset({"ulb_weak", "ulb_strong"})

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.p_hat = torch.full((self.num_classes,), 1.0 / self.num_classes)

    def adjust_outputs(self, out: Outputs, batch: Batch, iteration: int) -> Outputs:
        weak = out.logits["ulb_weak"]
        with torch.no_grad():
            probs = torch.softmax(weak.detach().float(), dim=-1)
            self.p_hat = self.p_hat.to(probs.device)
            self.p_hat = self.p.ema_p * self.p_hat + (1 - self.p.ema_p) * probs.mean(dim=0)
        shift = self.p.tau * torch.log(self.p_hat)
        logits = dict(out.logits)
        logits["ulb_weak"] = weak - shift.to(weak.dtype)
        for key, z in out.logits.items():
            if key.startswith("ulb_") and base_view(key[4:]) == "strong":
                logits[key] = z + shift.to(z.dtype)
        return dataclasses.replace(out, logits=logits)  # keeps a subclass's fields (mixup)

    def state_dict(self) -> dict[str, Any]:
        return {"p_hat": self.p_hat.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p_hat = state["p_hat"].clone()
