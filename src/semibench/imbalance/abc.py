"""ABC (Lee et al., NeurIPS 2021): an auxiliary balanced classifier on the shared features.

A second linear head g is trained on the backbone's features with class-balanced Bernoulli
masks, and it is g, not the base's head, that predicts at evaluation:

    w_c = min_k n_k / n_c                                 (n: labelled counts per class)
    L_lb  = mean_i( B(w_{y_i}) * CE(g(f(weak(x_i))), y_i) )
    p = softmax(g(f(weak(u))));  y_hat = argmax p         (no gradient)
    keep_c = 1 - t/T * (1 - w_c)                          (balanced mask tightens over training)
    L_ulb = mean_j( 1[max p_j >= abc_p_cutoff] * B(keep_{y_hat_j}) * CE(g(f(strong(u_j))), y_hat_j) )
    L = L_base + abc_loss_ratio * (L_lb + L_ulb)

B(q) is a Bernoulli draw with probability q (from the step's seeded generator, so a resumed
run draws the same masks). USB moves ``keep`` once per epoch (epoch / epochs); here it moves
every step (t / T), the same schedule without the staircase. Defaults: USB's classic_cv_imb.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from semibench.algorithms.base import Batch, LossOutput, Outputs, param
from semibench.algorithms.losses import ce_loss
from semibench.imbalance.base import IMBALANCE, HeadPredictor, ImbalanceMethod, fill_features


@dataclass
class ABCParams:
    abc_p_cutoff: float = param(0.95, "confidence threshold of the auxiliary pseudo-labels",
                                allowed="(0, 1]")
    abc_loss_ratio: float = param(1.0, "weight of the auxiliary classifier's loss",
                                  allowed="[0, inf)")


@IMBALANCE.register("abc")
class ABC(ImbalanceMethod):
    name = "abc"
    Params = ABCParams
    needs_views = frozenset({"lb_weak", "ulb_weak", "ulb_strong"})
    no_grad_views = frozenset({"ulb_weak"})

    def build_modules(self, num_features: int) -> dict[str, nn.Module]:
        return {"abc": nn.Linear(num_features, self.num_classes)}

    def complete_outputs(self, model: nn.Module, x: dict[str, torch.Tensor],
                         out: Outputs) -> Outputs:
        """Features of the views ABC reads, where the base kept none (the weak view's without
        gradient, as a teacher's)."""
        return fill_features(model, x, out, self.needs_views, self.no_grad_views)

    def balanced_weights(self) -> torch.Tensor:
        """w_c = min n / n_c: the probability that a class-c sample is kept."""
        counts = self.info.lb_class_counts.double().clamp_min(1)
        return (counts.min() / counts).float()

    def abc_loss(self, out: Outputs, batch: Batch, iteration: int) -> torch.Tensor:
        head = self.model.ssl_heads["abc"]
        w = self.balanced_weights().to(batch.y_lb.device)

        # Labelled: class-balanced Bernoulli mask on the auxiliary cross-entropy
        mask_lb = torch.bernoulli(w[batch.y_lb])
        loss_lb = (ce_loss(head(out.feats["lb_weak"]).float(), batch.y_lb) * mask_lb).mean()

        # Unlabelled: confident auxiliary pseudo-labels, kept with a tightening balanced mask
        with torch.no_grad():
            probs = torch.softmax(head(out.feats["ulb_weak"].detach()).float(), dim=-1)
            conf, y_hat = probs.max(dim=-1)
            keep = 1.0 - iteration / self.num_iterations * (1.0 - w)
            mask_ulb = (conf >= self.p.abc_p_cutoff).float() * torch.bernoulli(keep[y_hat])
        loss_ulb = (ce_loss(head(out.feats["ulb_strong"]).float(), y_hat) * mask_ulb).mean()
        return loss_lb + loss_ulb

    def adjust_loss(self, result: LossOutput, out: Outputs, batch: Batch,
                    iteration: int) -> LossOutput:
        abc = self.abc_loss(out, batch, iteration)
        result.loss = result.loss + self.p.abc_loss_ratio * abc
        result.log["abc_loss"] = abc.detach()
        return result

    def predictor(self, model: nn.Module) -> nn.Module:
        return HeadPredictor(model, "abc")
