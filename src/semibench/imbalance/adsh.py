"""Adsh (Guo & Li, ICML 2022): class-adaptive thresholds from the ranking of confidences.

The head class keeps FixMatch's threshold tau_1; every other class passes the same *fraction*
of its pseudo-labels as the head class does, so tail classes, whose confidences are lower, are
not starved:

    rho   = |{u : pred(u) = head, conf(u) >= tau_1}| / |{u : pred(u) = head}|
    thr_k = the n_k-th largest confidence among samples predicted k, n_k = int(rho * N_k)
    mask  = 1[conf >= thr_{pred}]                       (replaces FixMatch's mask())

The thresholds are recomputed every ``update_every`` steps (USB: once per 1024-step epoch).
USB scores the whole unlabelled set with the eval view at each epoch's end; here the scores are
each unlabelled sample's latest weak-view confidence, kept per sample during training (state
that travels with the checkpoint), so no extra pass over the pool is needed. Departures from
USB, for the paper's intent: the head is the class with the most labels (USB assumes class 0),
and rho counts the samples above tau_1 (USB's loop stores ``i / len`` at the last passing
index, one short, and with no passing sample its ``C[k][-1]`` lets every sample through).
FixMatch only, as in USB: it replaces FixMatch's ``mask()``.

The thresholds start at tau_1 for every class and are first updated at step
``update_every``, from the confidences recorded before that step (that step's own are
recorded after the update, as SAW's predictions are). USB's start differs, and is not
followed: its hook keeps s_k = -log(thr_k) and masks with ``conf >= exp(-s_k)``, but
initialises s_k = tau_1 (``torch.ones(C) * tau_1``), so until its first update, at the end of
the first epoch, every class's threshold is exp(-0.95) = 0.387, not 0.95: USB's first 1024
steps are FixMatch at a 0.387 threshold. That reads as tau_1 stored where -log(tau_1)
belongs (its later updates store -log of a confidence); here the head class's threshold is
tau_1 from the first step, as the rule above states. Adsh is in no default benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from semibench.algorithms.base import Algorithm, Batch, Outputs, param
from semibench.imbalance.base import IMBALANCE, ImbalanceMethod


@dataclass
class AdshParams:
    tau_1: float = param(0.95, "the head class's confidence threshold", allowed="(0, 1]")
    update_every: int = param(1024, "steps between threshold updates (USB: an epoch)",
                              allowed="[1, inf)")


@IMBALANCE.register("adsh")
class Adsh(ImbalanceMethod):
    name = "adsh"
    Params = AdshParams
    bases = frozenset({"fixmatch"})

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.thresholds = torch.full((self.num_classes,), float(self.p.tau_1))
        #: each unlabelled sample's latest weak-view confidence and prediction (-1: not seen)
        self.conf = torch.full((self.num_ulb,), -1.0)
        self.pred = torch.full((self.num_ulb,), -1, dtype=torch.long)

    def bind(self, base: Algorithm) -> None:
        base.mask = self.mask  # type: ignore[method-assign]  # FixMatch's variation point

    def mask(self, probs: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, dict[str, Any]]:
        conf, pred = probs.max(dim=-1)
        if batch.idx_ulb is not None:
            idx = batch.idx_ulb.cpu()
            self.conf[idx] = conf.detach().float().cpu()
            self.pred[idx] = pred.detach().cpu()
        thr = self.thresholds.to(probs.device)
        return (conf >= thr[pred]).to(probs.dtype), {}

    def adjust_outputs(self, out: Outputs, batch: Batch, iteration: int) -> Outputs:
        if iteration > 0 and iteration % self.p.update_every == 0:
            self.update_thresholds()
        return out

    def head_class(self) -> int:
        return int(self.info.lb_class_counts.argmax()) if self.info is not None else 0

    def update_thresholds(self) -> None:
        seen = self.pred >= 0
        head = self.conf[seen & (self.pred == self.head_class())]
        if len(head) == 0:
            return
        passing = int((head >= self.p.tau_1).sum())  # rho = passing / len(head)
        for k in range(self.num_classes):
            ranked = self.conf[seen & (self.pred == k)].sort(descending=True).values
            n = len(ranked) * passing // len(head)  # int(rho * N_k), exactly
            if n >= 1:
                self.thresholds[k] = ranked[n - 1]

    def state_dict(self) -> dict[str, Any]:
        return {"thresholds": self.thresholds.clone(), "conf": self.conf.clone(),
                "pred": self.pred.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.thresholds = state["thresholds"].clone()
        self.conf = state["conf"].clone()
        self.pred = state["pred"].clone()
