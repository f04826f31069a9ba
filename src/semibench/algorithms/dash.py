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

from semibench.algorithms.base import ALGORITHMS, Algorithm, Batch, LossOutput, Outputs, param
from semibench.algorithms.losses import ce_loss, masked_mean, one_hot


@dataclass
class DashParams:
    lambda_u: float = param(1.0, "weight lambda_u of the unsupervised loss", allowed="[0, inf)")
    T: float = param(0.5, "temperature of the soft pseudo-labels while rho > rho_min",
                     allowed="(0, inf)")
    gamma: float = param(1.27, "decay rate of rho (rho must not grow)", allowed="[1, inf)")
    C: float = param(1.0001, "constant factor of rho", allowed="(0, inf)")
    rho_min: float = param(0.05, "floor of rho; reaching it switches to hard pseudo-labels",
                           allowed="[0, inf)")
    rho_init: float = param(0.0, "initial rho, or 0 to estimate it from the warm-up's labelled "
                            "loss (then warmup_fraction must be > 0)", allowed="[0, inf)")
    warmup_fraction: float = param(0.01, "supervised-only warm-up, as a fraction of the run",
                                   allowed="[0, 1)")
    decay_every_fraction: float = param(0.05, "rho decays every this fraction of the run",
                                        allowed="(0, 1]")

    def joint_rules(self) -> list[tuple[str, bool, str]]:
        """(key, holds, rule) for what no single range can say."""
        return [("rho_init", self.rho_init > 0.0 or self.warmup_fraction > 0.0,
                 "> 0 when warmup_fraction = 0 (nothing to estimate it from)")]


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
        # rho and the warm-up loss live on the device, the counters on the host: the schedule
        # never waits for the device
        self.rho = torch.tensor(0.0, dtype=torch.float64)
        self.rho_init = torch.tensor(params.rho_init, dtype=torch.float64)
        self.rho_update_cnt = 0
        # labelled loss over the second half of the warm-up, for rho_init
        self.wu_loss_sum = torch.tensor(0.0, dtype=torch.float64)
        self.wu_loss_count = 0

    # ------------------------------------------------------------------ rho schedule
    def _record_warmup(self, iteration: int, sup: torch.Tensor) -> None:
        if iteration >= self.warmup_iterations // 2:
            self.wu_loss_sum = self.wu_loss_sum.to(sup.device) + sup.detach().double()
            self.wu_loss_count += 1

    def _decay_rho(self, device: torch.device) -> None:
        if self.rho_update_cnt == 0 and self.p.rho_init == 0.0:
            if self.wu_loss_count == 0:
                raise RuntimeError("dash: rho_init is not set and no warm-up loss was recorded")
            self.rho_init = self.wu_loss_sum / self.wu_loss_count
        scale = self.p.C * self.p.gamma ** (-self.rho_update_cnt)
        self.rho = torch.clamp(self.rho_init.to(device) * scale, min=self.p.rho_min)
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
            self._decay_rho(logits_w.device)

        # Pseudo-labels (soft until rho reaches its floor), kept where their own loss <= rho
        rho = self.rho.to(logits_w.device)
        soft = torch.softmax(logits_w / self.p.T, dim=-1)
        hard = one_hot(logits_w.argmax(dim=-1), logits_w.shape[-1])
        target = torch.where(rho <= self.p.rho_min, hard, soft)  # hard once rho hits its floor
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
        return {n: torch.as_tensor(getattr(self, n)).clone() for n in self._STATE}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != set(self._STATE):
            raise ValueError(f"dash: checkpoint holds {sorted(state)}, expected "
                             f"{sorted(self._STATE)}")
        for n in self._STATE:
            setattr(self, n, state[n].clone())
        self.rho_update_cnt, self.wu_loss_count = (int(state["rho_update_cnt"]),
                                                   int(state["wu_loss_count"]))
