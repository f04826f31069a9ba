"""DASO (Oh et al., CVPR 2022): distribution-aware blending of linear and semantic
pseudo-labels.

A queue keeps the last ``queue_len`` labelled features per class (from the EMA model, no
gradient); their means are class prototypes P. After ``num_pretrain_iter`` steps:

    q_sem  = softmax(cos(f(weak(u)), P) / T_proto)                    (semantic pseudo-label)
    pi     = counts of recent pseudo-labels ^ (1 / T_dist), divided by its max
    rho_j  = pi[argmax p_j]          (interp_alpha instead, if not with_dist_aware)
    p_mix  = (1 - rho) * p + rho * q_sem;   the pseudo-label is argmax p_mix
    L     += assign_loss_ratio * CE(cos(f(strong(u)), P) / T_proto, q_sem)   (soft targets)

Classes the model over-predicts lean on the semantic label, which is less biased towards the
head. The counts are of the pseudo-labels of the last ``num_pl_dist_iter`` steps (refreshed
every that many steps). As in USB's hook, the base masks by the model's own confidence and
labels with argmax p_mix (the two swap places in the weak probabilities).

USB differs, and this is the paper's intent instead: USB's pseudo-labelling hook runs inside
the base's step, before its ``train_step`` computes the semantic labels of the current batch,
so it blends each batch with the *previous* batch's q_sem (other samples). USB runs the EMA
weights in training mode to fill the queue (the live model's batch-norm statistics move);
here the EMA model runs in eval mode. Defaults: USB's classic_cv_imb (T_dist 1.5 is its
CIFAR-10 value; 0.3 for CIFAR-100 and STL-10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from semibench.algorithms.base import Batch, DataInfo, LossOutput, Outputs, param
from semibench.algorithms.losses import ce_loss
from semibench.imbalance.base import IMBALANCE, ImbalanceMethod, fill_features, relabel


@dataclass
class DASOParams:
    queue_len: int = param(256, "labelled features kept per class", allowed="[1, inf)")
    T_proto: float = param(0.05, "temperature of the prototype similarities", allowed="(0, inf)")
    T_dist: float = param(1.5, "temperature of the pseudo-label distribution (USB: 1.5 "
                          "CIFAR-10, 0.3 otherwise)", allowed="(0, inf)")
    interp_alpha: float = param(0.5, "fixed blending weight when not with_dist_aware",
                                allowed="[0, 1]")
    with_dist_aware: bool = param(True, "blend by the pseudo-label distribution")
    assign_loss_ratio: float = param(1.0, "weight of the semantic alignment loss",
                                     allowed="[0, inf)")
    num_pl_dist_iter: int = param(100, "steps between pseudo-label distribution updates",
                                  allowed="[1, inf)")
    num_pretrain_iter: int = param(5120, "steps of the base algorithm alone",
                                   allowed="[0, inf)")


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[N, D] x [K, D] -> [N, K] cosine similarities (0 against an all-zero prototype)."""
    return F.normalize(a.float(), dim=1, eps=1e-8) @ F.normalize(b.float(), dim=1, eps=1e-8).T


@IMBALANCE.register("daso")
class DASO(ImbalanceMethod):
    name = "daso"
    Params = DASOParams
    needs_views = frozenset({"lb_weak", "ulb_weak", "ulb_strong"})

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.bank: list[torch.Tensor] = []  # per class, [<= queue_len, D]
        #: pseudo-label counts: the current estimate and those since its last refresh
        self.pl_dist = torch.zeros(self.num_classes)
        self.pl_counts = torch.zeros(self.num_classes)
        self.ema_model: nn.Module | None = None

    def attach(self, model: nn.Module, ema_model: nn.Module | None, info: DataInfo) -> None:
        super().attach(model, ema_model, info)
        self.ema_model = ema_model

    def enqueue(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        feats, labels = feats.detach().float().cpu(), labels.cpu()
        if not self.bank:
            self.bank = [torch.empty(0, feats.shape[1]) for _ in range(self.num_classes)]
        for c in range(self.num_classes):
            new = feats[labels == c]
            if len(new):
                self.bank[c] = torch.cat([self.bank[c], new])[-self.p.queue_len:]

    def prototypes(self, device: torch.device) -> torch.Tensor:
        return torch.stack([b.mean(dim=0) if len(b) else torch.zeros(b.shape[1])
                            for b in self.bank]).to(device)

    def complete_outputs(self, model: nn.Module, x: dict[str, torch.Tensor],
                         out: Outputs) -> Outputs:
        # the queue's labelled features come from the EMA model (the live one without EMA)
        with torch.no_grad():
            self._lb_feats = (self.ema_model or model).forward_features(x["lb_weak"])
        return fill_features(model, x, out, frozenset({"ulb_weak", "ulb_strong"}),
                             frozenset({"ulb_weak"}))

    def adjust_outputs(self, out: Outputs, batch: Batch, iteration: int) -> Outputs:
        self.enqueue(self._lb_feats, batch.y_lb)
        probs = torch.softmax(out.logits["ulb_weak"].detach().float(), dim=-1)
        label = probs.argmax(dim=-1)
        self._q_sem = None
        if iteration + 1 >= self.p.num_pretrain_iter:
            protos = self.prototypes(probs.device)
            with torch.no_grad():
                self._q_sem = torch.softmax(
                    cosine(out.feats["ulb_weak"].detach(), protos) / self.p.T_proto, dim=-1)
            self._protos = protos
            if self.p.with_dist_aware:
                dist = self.pl_dist.to(probs.device)
                dist = dist / dist.sum().clamp_min(1e-12)
                dist = dist ** (1.0 / self.p.T_dist)
                dist = dist / dist.max().clamp_min(1e-12)
                rho = dist[label][:, None]
            else:
                rho = torch.full_like(probs[:, :1], self.p.interp_alpha)
            label = ((1 - rho) * probs + rho * self._q_sem).argmax(dim=-1)
            out = relabel(out, label)
        self.pl_counts += torch.bincount(label.cpu(), minlength=self.num_classes).float()
        if (iteration + 1) % self.p.num_pl_dist_iter == 0:
            self.pl_dist, self.pl_counts = self.pl_counts, torch.zeros(self.num_classes)
        return out

    def adjust_loss(self, result: LossOutput, out: Outputs, batch: Batch,
                    iteration: int) -> LossOutput:
        if self._q_sem is None:
            return result
        sim = cosine(out.feats["ulb_strong"], self._protos) / self.p.T_proto
        assign = ce_loss(sim, self._q_sem).mean()
        result.loss = result.loss + self.p.assign_loss_ratio * assign
        result.log["assign_loss"] = assign.detach()
        return result

    def state_dict(self) -> dict[str, Any]:
        return {"bank": [b.clone() for b in self.bank], "pl_dist": self.pl_dist.clone(),
                "pl_counts": self.pl_counts.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bank = [b.clone() for b in state["bank"]]
        self.pl_dist = state["pl_dist"].clone()
        self.pl_counts = state["pl_counts"].clone()
