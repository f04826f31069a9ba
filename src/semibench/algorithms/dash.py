"""Dash (Xu et al., ICML 2021): keep the unlabelled samples whose own pseudo-label loss is
below a threshold rho that decays over training.

    warm-up (the first W iterations): L = CE(f(weak(x)), y) only
    rho_init = configured value, or the mean labelled loss over the second half of the warm-up
    every P iterations after the warm-up (k = 0, 1, ...): rho = max(C * gamma^-k * rho_init,
                                                                  rho_min)
    y_hat = argmax p if rho == rho_min, else softmax(f(weak(u)) / T)      (no gradient)
    mask = 1[CE(f(weak(u)), y_hat) <= rho]
    L = CE(f(weak(x)), y) + lambda_u * mean(mask * CE(f(strong(u)), y_hat))

How this differs from USB, and why. USB first runs ``num_wu_iter`` = 2048 *extra*
supervised-only steps (advancing the LR schedule), sets rho_init to the loss on the *eval
split* (the test set for CV: a test-set leak) and restarts its iteration counter; then it
decays rho every 10 "epochs" = 10 x 1024 = 10,240 iterations, with gamma = 1.27,
C = 1.0001, rho_min = 0.05, T = 0.5.
Here the run keeps its configured length and the warm-up is its first
``W = max(1, round(warmup_fraction * num_iterations))`` iterations (0 if the fraction is 0),
so short runs scale it; the trainer still forwards the unlabelled views then, but they get
weight 0. rho_init comes from the labelled training loss, never from evaluation data: the mean
over the second half of the warm-up, when the model has started to fit but before the last
batch's noise dominates (the Dash paper likewise estimates it from the warm-up model's loss);
a positive ``rho_init`` fixes it instead. The decay period is
``P = max(1, round(decay_every_fraction * num_iterations))``. USB's values as fractions of its
run lengths are the per-domain defaults: vision 2048 / 204,800 = 0.01 and
10,240 / 204,800 = 0.05; text and audio 2048 / 102,400 = 0.02 and 10,240 / 102,400 = 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from semibench.algorithms.base import (
    ALGORITHMS,
    Algorithm,
    Batch,
    LossOutput,
    Outputs,
    check_common,
    check_param,
)
from semibench.algorithms.losses import ce_loss, masked_mean


@dataclass
class DashParams:
    #: weight lambda_u of the unsupervised loss (>= 0)
    lambda_u: float = 1.0
    #: temperature of the soft pseudo-labels used while rho > rho_min (> 0)
    T: float = 0.5
    #: decay rate of rho (>= 1)
    gamma: float = 1.27
    #: constant factor of rho (> 0)
    C: float = 1.0001
    #: floor of rho (>= 0); reaching it switches to hard pseudo-labels
    rho_min: float = 0.05
    #: initial rho (> 0), or 0 to estimate it from the warm-up's labelled loss
    rho_init: float = 0.0
    #: supervised-only warm-up, as a fraction of the run's iterations, in [0, 1)
    warmup_fraction: float = 0.01
    #: rho decays every this fraction of the run's iterations, in (0, 1]
    decay_every_fraction: float = 0.05

    def check(self, name: str) -> None:
        check_common(name, self, {"lambda_u": "weight", "T": "temperature", "C": "positive"})
        check_param(name, "gamma", self.gamma, self.gamma >= 1.0, ">= 1 (rho must not grow)")
        check_param(name, "rho_min", self.rho_min, self.rho_min >= 0.0, ">= 0")
        check_param(name, "rho_init", self.rho_init, self.rho_init >= 0.0,
                    ">= 0 (0 = estimate from the warm-up)")
        check_param(name, "warmup_fraction", self.warmup_fraction,
                    0.0 <= self.warmup_fraction < 1.0, "in [0, 1)")
        check_param(name, "decay_every_fraction", self.decay_every_fraction,
                    0.0 < self.decay_every_fraction <= 1.0, "in (0, 1]")
        check_param(name, "rho_init", self.rho_init,
                    self.rho_init > 0.0 or self.warmup_fraction > 0.0,
                    "> 0 when warmup_fraction = 0 (nothing to estimate it from)")


@ALGORITHMS.register("dash")
class Dash(Algorithm):
    name = "dash"
    Params = DashParams
    param_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "text": {"warmup_fraction": 0.02, "decay_every_fraction": 0.1},
        "audio": {"warmup_fraction": 0.02, "decay_every_fraction": 0.1},
    }
    lb_views = ("weak",)
    ulb_views = ("weak", "strong")
    target_views = frozenset({"ulb_weak"})

    def __init__(self, params: DashParams, **kwargs: Any):
        super().__init__(params, **kwargs)
        n = self.num_iterations
        self.warmup_iterations = (max(1, round(params.warmup_fraction * n))
                                  if params.warmup_fraction > 0 else 0)
        self.decay_every = max(1, round(params.decay_every_fraction * n))
        self.rho = torch.tensor(0.0, dtype=torch.float64)
        self.rho_init = torch.tensor(params.rho_init, dtype=torch.float64)
        self.rho_update_cnt = torch.tensor(0, dtype=torch.long)
        # labelled loss over the second half of the warm-up, for rho_init
        self.wu_loss_sum = torch.tensor(0.0, dtype=torch.float64)
        self.wu_loss_count = torch.tensor(0, dtype=torch.long)

    # ------------------------------------------------------------------ rho schedule
    def _record_warmup(self, iteration: int, sup: torch.Tensor) -> None:
        if iteration >= self.warmup_iterations // 2:
            self.wu_loss_sum += sup.item()
            self.wu_loss_count += 1

    def _decay_rho(self) -> None:
        if int(self.rho_update_cnt) == 0 and float(self.rho_init) == 0.0:
            if int(self.wu_loss_count) == 0:
                raise RuntimeError("dash: rho_init is not set and no warm-up loss was recorded")
            self.rho_init = self.wu_loss_sum / self.wu_loss_count
        k = int(self.rho_update_cnt)
        rho = self.p.C * self.p.gamma ** (-k) * float(self.rho_init)
        self.rho = torch.tensor(max(rho, self.p.rho_min), dtype=torch.float64)
        self.rho_update_cnt += 1

    # ------------------------------------------------------------------ the loss
    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        # Labelled cross-entropy
        sup = ce_loss(out.logits["lb_weak"].float(), batch.y_lb).mean()
        logits_w = out.logits["ulb_weak"].detach().float()

        # Warm-up: supervised only; its labelled loss estimates rho_init
        if iteration < self.warmup_iterations:
            self._record_warmup(iteration, sup)
            return LossOutput(
                loss=sup, log={"sup_loss": sup.detach(), "unsup_loss": 0.0},
                mask=torch.zeros(len(logits_w), device=logits_w.device),
                pseudo_label=logits_w.argmax(dim=-1),
            )
        if (iteration - self.warmup_iterations) % self.decay_every == 0:
            self._decay_rho()

        # Pseudo-labels (soft until rho reaches its floor), kept where their own loss <= rho
        rho = float(self.rho)
        if rho <= self.p.rho_min:
            target = logits_w.argmax(dim=-1)
        else:
            target = torch.softmax(logits_w / self.p.T, dim=-1)
        mask = (ce_loss(logits_w, target) <= rho).to(logits_w.dtype)

        # Consistency on the strong view
        unsup = masked_mean(ce_loss(out.logits["ulb_strong"].float(), target), mask)
        loss = sup + self.p.lambda_u * unsup
        return LossOutput(
            loss=loss,
            log={"sup_loss": sup.detach(), "unsup_loss": unsup.detach(), "rho": rho},
            mask=mask,
            pseudo_label=logits_w.argmax(dim=-1),
        )

    # ------------------------------------------------------------------ state
    _STATE = ("rho", "rho_init", "rho_update_cnt", "wu_loss_sum", "wu_loss_count")

    def state_dict(self) -> dict[str, Any]:
        return {n: getattr(self, n).clone() for n in self._STATE}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != set(self._STATE):
            raise ValueError(f"dash: checkpoint holds {sorted(state)}, expected "
                             f"{sorted(self._STATE)}")
        for n in self._STATE:
            setattr(self, n, state[n].clone())
