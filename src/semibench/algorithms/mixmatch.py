"""MixMatch (Berthelot et al., NeurIPS 2019): guessed labels, sharpening and mixup, as in USB.

    q     = Sharpen((p(weak1(u)) + p(weak2(u))) / 2, T)     (no gradient, batch norm frozen)
    X     = cat(x, weak1(u), weak2(u)),  Y = cat(onehot(y), q, q)
    X~,Y~ = mixup(X, Y): lambda ~ Beta(alpha, alpha), lambda = max(lambda, 1 - lambda), one
            permutation of the whole concatenation
    logits = f(X~) in chunks of B (interleaved; the first chunk updates batch norm, the rest frozen)
    L = CE(logits[:B], Y~[:B]) + lambda_u * ramp(it) * mean MSE(softmax(logits[B:]), Y~[B:])

with ramp(it) = clip(it / (unsup_warm_up * iterations), 0, 1). For text and audio USB mixes the
pooled features instead of the inputs (``mixup_manifold=True``) and then applies the head only;
for text (token ids) input mixup is impossible.

Differences from USB's ``mixmatch.py`` (all deliberate):
- USB ignores ``use_cat``; so does this file (the guessing passes are always separate, BN-frozen
  and gradient-free, as USB's).
- Manifold mixup: USB recomputes the three feature passes (labelled, weak 1, weak 2) with
  gradients and batch norm updating on all three; USB's text/audio backbones have no batch norm,
  so that is moot there. Here the labelled feature pass updates batch norm and the two
  unlabelled ones run with it frozen, as every other unlabelled pass of this algorithm does
  (this matters only for batch-norm backbones such as the offline audio CNN).
- ``uratio`` defaults to 1 (``train_defaults``, which override the task's setting), USB's
  value for MixMatch in every benchmark; the config's ``train.uratio`` still wins.
- lambda_u defaults to USB's CV/audio value 10 (100 for text); classic CV (TorchSSL) runs use
  100 (150 for CIFAR-100), which their config must set.
- Lambda and the permutation come from the per-step-seeded torch RNG, not numpy's global RNG,
  so runs resume exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from semibench.algorithms.base import (
    ALGORITHMS,
    Algorithm,
    Batch,
    DataInfo,
    LossOutput,
    Outputs,
    param,
)
from semibench.algorithms.bn import bn_frozen
from semibench.algorithms.losses import ce_loss, linear_ramp, mse_probs, one_hot, sharpen
from semibench.algorithms.mixup import (
    MixedOutputs,
    check_float_inputs,
    mixing_of,
    mixup_forward,
)


@dataclass
class MixMatchParams:
    lambda_u: float = param(10.0, "weight lambda_u of the unsupervised (MSE) loss (USB: 10 "
                            "CV/audio, 100 NLP, 100/150 classic CV)", allowed="[0, inf)")
    T: float = param(0.5, "sharpening temperature", allowed="(0, inf)")
    mixup_alpha: float = param(0.5, "mixup Beta(alpha, alpha) parameter", allowed="(0, inf)")
    unsup_warm_up: float = param(0.4, "lambda_u ramps up linearly over this fraction of the "
                                 "iterations (0 = no ramp)", allowed="[0, inf)")
    mixup_manifold: bool = param(False, "mix pooled features and apply the head only (USB: "
                                 "text and audio); else mix the inputs")


def guess_labels(logits_views: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """MixMatch's label guess: the mean prediction over the views, sharpened."""
    probs = torch.stack([torch.softmax(z.detach().float(), dim=-1) for z in logits_views])
    return sharpen(probs.mean(dim=0), temperature)


@ALGORITHMS.register("mixmatch")
class MixMatch(Algorithm):
    name = "mixmatch"
    Params = MixMatchParams
    param_defaults = {
        "text": {"lambda_u": 100.0, "mixup_manifold": True},
        "audio": {"mixup_manifold": True},
    }
    train_defaults = {"all": {"uratio": 1}}
    lb_views = ("weak",)
    ulb_views = ("weak", "weak2")  # two independent weak draws (USB's x_ulb_w and x_ulb_s)
    target_views = frozenset({"ulb_weak", "ulb_weak2"})

    def attach(self, model: nn.Module, ema_model: nn.Module | None, info: DataInfo) -> None:
        if info.domain == "text" and not self.p.mixup_manifold:
            raise ValueError(f"algorithm_params.{self.name}.mixup_manifold=False: text inputs "
                             "are token ids and cannot be mixed; use mixup_manifold=True")
        super().attach(model, ema_model, info)

    def forward(self, model: nn.Module, x: dict[str, torch.Tensor], cat: bool) -> Outputs:
        x_lb, u1, u2 = x["lb_weak"], x["ulb_weak"], x["ulb_weak2"]
        if not self.p.mixup_manifold:
            check_float_inputs(x_lb, self.name)
        # Label guessing inputs: no gradient, batch-norm statistics untouched
        with torch.no_grad(), bn_frozen(model):
            logits_u1, logits_u2 = model(u1), model(u2)

        if self.p.mixup_manifold:
            f_lb = model.forward_features(x_lb)
            with bn_frozen(model):
                parts = [f_lb, model.forward_features(u1), model.forward_features(u2)]
        else:
            parts = [x_lb, u1, u2]
        logits, mixing = mixup_forward(model, parts, self.p.mixup_alpha, self.p.mixup_manifold,
                                       len(x_lb))
        return MixedOutputs(logits={"ulb_weak": logits_u1, "ulb_weak2": logits_u2,
                                    "mixed": logits}, feats={}, mixing=mixing)

    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        mixing = mixing_of(out)
        n_lb = len(batch.y_lb)
        # Guessed labels for the unlabelled batch (both weak views), sharpened
        q = guess_labels([out.logits["ulb_weak"], out.logits["ulb_weak2"]], self.p.T)

        # The same mixup as the inputs, applied to the targets
        y_lb = one_hot(batch.y_lb, q.shape[-1], q.dtype)
        targets = mixing.apply(torch.cat([y_lb, q, q]))
        logits = out.logits["mixed"].float()

        # Soft cross-entropy on the labelled chunk, MSE of probabilities on the rest
        sup = ce_loss(logits[:n_lb], targets[:n_lb]).mean()
        unsup = mse_probs(logits[n_lb:], targets[n_lb:]).mean()
        ramp = linear_ramp(iteration, self.num_iterations, self.p.unsup_warm_up)
        loss = sup + self.p.lambda_u * ramp * unsup
        return LossOutput(
            loss=loss,
            log={"sup_loss": sup.detach(), "unsup_loss": unsup.detach(), "ramp": ramp},
            mask=torch.ones(len(q), device=q.device),
            pseudo_label=q.argmax(dim=-1),
        )
