"""Virtual Adversarial Training (Miyato et al., TPAMI 2018; USB's ``vat``): predictions must not
change under the small input perturbation that changes them most.

    e = embed(weak(u))         (the input itself; the token embeddings for text)
    z = f(e)                   (train mode, BN statistics frozen for every unlabelled pass)
    p = softmax(z).detach()
    d = xi * d0 / ||d0||,  d0 ~ N(0, I)                 (per sample)
    g = grad_d KL(p || softmax(f(e + d)))               (one power iteration, w.r.t. d only)
    r_adv = vat_eps * g / ||g||
    L_vat = mean KL(p || softmax(f(e + r_adv)));  L_ent = mean H(softmax(z))
    L = CE(f(weak(x)), y) + lambda_u * ramp * L_vat + ent_loss_ratio * L_ent

The power iteration takes the gradient with ``torch.autograd.grad`` so it never reaches the
parameters' ``.grad`` (USB backpropagates and then zeroes them), and it runs in float32 even
under bf16 autocast, so that a tiny ``xi`` is not rounded away. d0 is drawn on the CPU, as in
USB, which gives the same draw on any device. With USB's xi = 1e-6 most of the perturbation is
below float32 resolution, so g mostly follows the difference between the two stochastic passes
(dropout); this is USB's behaviour too. For text the perturbation acts on the embedding output
(USB's ``vat_embed``), and gradients reach the embedding layer through the clean ``e``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from semibench.algorithms.base import ALGORITHMS, Algorithm, Batch, LossOutput, Outputs, param
from semibench.algorithms.bn import bn_frozen, forward_per_view
from semibench.algorithms.losses import ce_loss, entropy, kl_div, linear_ramp


def l2_normalise(d: torch.Tensor) -> torch.Tensor:
    """Scale every sample (dim 0) to unit L2 norm over all its other dimensions."""
    norm = d.flatten(1).norm(dim=1).view(-1, *([1] * (d.dim() - 1)))
    return d / (norm + 1e-12)


@dataclass
class VATParams:
    lambda_u: float = param(1.0, "weight lambda_u of the virtual adversarial loss",
                            allowed="[0, inf)")
    ent_loss_ratio: float = param(0.06, "weight of the entropy-minimisation term",
                                  allowed="[0, inf)")
    vat_eps: float = param(6.0, "norm epsilon of the adversarial perturbation",
                           allowed="(0, inf)")
    xi: float = param(1e-6, "norm xi of the random probe of the power iteration",
                      allowed="(0, inf)")
    unsup_warm_up: float = param(0.4, "lambda_u ramps up linearly over this fraction of the "
                                 "iterations (0 = no ramp)", allowed="[0, inf)")


@ALGORITHMS.register("vat")
class VAT(Algorithm):
    name = "vat"
    Params = VATParams
    lb_views = ("weak",)
    ulb_views = ("weak",)

    def adversarial_perturbation(
        self, model: nn.Module, e: torch.Tensor, x: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """r_adv for the embedded inputs ``e`` (detached) whose clean predictions are ``target``."""
        wide = torch.promote_types(e.dtype, torch.float32)  # bf16 -> fp32, keeps fp64
        d = self.p.xi * l2_normalise(torch.randn(e.shape).to(e.device, wide))
        d.requires_grad_(True)
        with torch.autocast(e.device.type, enabled=False):
            logits = model.forward_head(model.forward_embedded(e.to(wide) + d, x))
            kl = kl_div(target, logits).mean()
            (g,) = torch.autograd.grad(kl, d)  # backward too: autocast reaches it otherwise
        return self.p.vat_eps * l2_normalise(g.detach())

    def forward(self, model: nn.Module, x: dict[str, torch.Tensor], cat: bool) -> Outputs:
        out = forward_per_view(model, {"lb_weak": x["lb_weak"]})
        u = x["ulb_weak"]
        with bn_frozen(model):
            e = model.embed(u)
            feats = model.forward_embedded(e, u)
            logits = model.forward_head(feats)
            target = torch.softmax(logits.detach().float(), dim=-1)
            r_adv = self.adversarial_perturbation(model, e.detach(), u, target)
            logits_adv = model.forward_head(model.forward_embedded(e + r_adv.to(e.dtype), u))
        out.logits.update(ulb_weak=logits, ulb_adv=logits_adv)
        out.feats["ulb_weak"] = feats
        return out

    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        # Labelled cross-entropy
        sup = ce_loss(out.logits["lb_weak"], batch.y_lb).mean()

        # Smoothness under the virtual adversarial perturbation, clean prediction as target
        logits = out.logits["ulb_weak"].float()
        unsup = kl_div(torch.softmax(logits.detach(), dim=-1), out.logits["ulb_adv"].float()).mean()

        # Entropy minimisation on the clean prediction (with gradient)
        ent = entropy(torch.softmax(logits, dim=-1)).mean()

        ramp = linear_ramp(iteration, self.num_iterations, self.p.unsup_warm_up)
        loss = sup + self.p.lambda_u * ramp * unsup + self.p.ent_loss_ratio * ent
        return LossOutput(loss=loss, log={"sup_loss": sup.detach(), "unsup_loss": unsup.detach(),
                                          "ent_loss": ent.detach(), "unsup_ramp": ramp})
