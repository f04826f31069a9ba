"""TRAS (Wei et al., 2022, "Transfer and Share"): a balanced target classifier learns from the
base SSL model's pseudo-label distribution, transformed towards the minority classes.

A second head g shares the backbone ("share"). With the labelled class weights
w_c = min_k n_k / n_c and la_c = log(w_c ^ tro):

    L_sup   = CE(g(f(weak(x))) + la, y)                      (logit-adjusted cross-entropy)
    T_c     = A * softmax(-la)_c + B                         (per-class transfer strength)
    q_j     = softmax((z_j - T_{y_hat_j} * la) / 2)          z: the base's weak logits
    L_unsup = -mean_j( mask_j * sum_k q_jk log softmax(g(f(strong(u_j))))_k )
    L       = L_base + L_sup + L_unsup                       (after warmup_iterations)

z, y_hat and the mask are the base's (FixMatch's confidence mask), so the minority classes
gain mass in the transferred distribution ("transfer"); g predicts at evaluation.

Departures from USB, for the paper's intent: the teacher is the base SSL model's weak logits
(the abstract: TRAS transfers the pseudo-label distribution *of a traditional SSL model*);
USB distils g's own weak logits into g. USB also overrides ``compute_prob`` for the whole
run, so the base's pseudo-labels come from logits - la, i.e. tilted towards the head classes
(la <= 0); here the base is left as it is. USB evaluates the base head during its warm-up
epochs; here g always predicts (a checkpoint's predictor must not depend on the step). FixMatch
only, as in USB. Defaults: USB's ``get_argument`` (warm-up 10 epochs of 1024 steps, A = B = 2,
tro = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from semibench.algorithms.base import Batch, LossOutput, Outputs, param
from semibench.algorithms.losses import ce_loss
from semibench.imbalance.base import IMBALANCE, HeadPredictor, ImbalanceMethod, fill_features


@dataclass
class TRASParams:
    A: float = param(2.0, "scale of the per-class transfer strength", allowed="[0, inf)")
    B: float = param(2.0, "offset of the per-class transfer strength", allowed="[0, inf)")
    tro: float = param(1.0, "exponent of the class weights in the logit adjustment",
                       allowed="[0, inf)")
    warmup_iterations: int = param(10240, "steps before the TRAS losses (USB: 10 epochs)",
                                   allowed="[0, inf)")


@IMBALANCE.register("tras")
class TRAS(ImbalanceMethod):
    name = "tras"
    Params = TRASParams
    bases = frozenset({"fixmatch"})
    needs_views = frozenset({"lb_weak", "ulb_weak", "ulb_strong"})

    def build_modules(self, num_features: int) -> dict[str, nn.Module]:
        return {"tras": nn.Linear(num_features, self.num_classes)}

    def complete_outputs(self, model: nn.Module, x: dict[str, torch.Tensor],
                         out: Outputs) -> Outputs:
        return fill_features(model, x, out, self.needs_views, frozenset({"ulb_weak"}))

    def adjustment(self) -> tuple[torch.Tensor, torch.Tensor]:
        """la (log of the class weights ^ tro) and the per-class transfer strength T."""
        counts = self.info.lb_class_counts.double().clamp_min(1)
        la = torch.log((counts.min() / counts) ** self.p.tro + 1e-12)
        strength = self.p.A * torch.softmax(-la, dim=0) + self.p.B
        return la.float(), strength.float()

    def adjust_loss(self, result: LossOutput, out: Outputs, batch: Batch,
                    iteration: int) -> LossOutput:
        if iteration < self.p.warmup_iterations:
            return result
        head = self.model.ssl_heads["tras"]
        la, strength = (t.to(batch.y_lb.device) for t in self.adjustment())

        # Share: the target classifier on the labelled batch, logit-adjusted
        sup = ce_loss(head(out.feats["lb_weak"]).float() + la, batch.y_lb).mean()

        # Transfer: the base's weak logits, shifted towards the minority classes
        with torch.no_grad():
            z = out.logits["ulb_weak"].detach().float()
            y_hat = z.argmax(dim=-1)
            q = torch.softmax((z - strength[y_hat][:, None] * la) / 2, dim=-1)
            mask = (result.mask if result.mask is not None
                    else torch.ones(len(z), device=z.device)).float()
        student = torch.log_softmax(head(out.feats["ulb_strong"]).float(), dim=-1)
        unsup = -((q * student).sum(dim=-1) * mask).mean()

        result.loss = result.loss + sup + unsup
        result.log["tras_loss"] = (sup + unsup).detach()
        return result

    def predictor(self, model: nn.Module) -> nn.Module:
        return HeadPredictor(model, "tras")
