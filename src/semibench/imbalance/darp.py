"""DARP (Kim et al., NeurIPS 2020): distribution-aligning refinement of pseudo-labels.

Every unlabelled sample's latest weak-view prediction q_i is kept. After a warm-up, every
``num_refine_iter`` steps the whole table is refined to labels X that stay close to q but whose
class totals match the expected unlabelled distribution (the labelled one, scaled to N_u):

    min_X  sum_i w_i KL(x_i || q_i)   s.t.  sum_k x_ik = 1,  sum_i x_ik = N_u * pi_k,
    w_i = 1 / H(q_i)                     (confident samples move least)

solved in the dual: x_ik = q_ik/e * a_i * exp(-nu_k / w_i), a_i from the row constraint and
each nu_k by Newton's method on its column constraint, ``iter_T`` alternations. Before the
solve, DARP's "iterative normalisation" (its official code, ``alpha``) rescales q towards the
target using each class's top int(alpha * N_u * pi_k) samples.

How the refined label reaches the base: the weak view's class becomes DARP's argmax while its
confidence stays the model's (the two entries are swapped in the weak probabilities). With
FixMatch's hard labels this is USB's behaviour, whose mask reads the model's
confidence and whose pseudo-label reads DARP's.

Schedule, as USB's: the table is refined at every step ``it`` with ``it >= warmup * T`` and
``it % num_refine_iter == 0`` (steps counted from 0, as USB's ``it``); the steps in between
use the last refinement. USB's condition is ``epoch > darp_warmup_epochs`` with epochs counted
from 0, so with its classic_cv_imb settings (``darp_warmup_epochs`` 200, 256 epochs of 1024
steps) refining begins with epoch 201, at step 201 x 1024 = 205,824, and the first refinement
is at step 205,830: hence ``warmup`` = 201/256 = 0.78515625 here, which gives the same start
and first refinement at T = 262,144 (for USB's other settings: (``darp_warmup_epochs`` + 1)
/ ``epoch``).
One departure: between the end of the warm-up and the first refinement (steps 205,824 to
205,829 above) USB labels with its uniform initial table, every pseudo-label class 0; here
the base's own pseudo-labels pass unchanged until the first refinement exists. Defaults:
USB's classic_cv_imb (alpha 2, iter_T 10, refine every 10 steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from semibench.algorithms.base import Batch, Outputs, param
from semibench.imbalance.base import IMBALANCE, ImbalanceMethod, relabel


@dataclass
class DARPParams:
    warmup: float = param(0.78515625, "fraction of the run before refining (USB: "
                          "'epoch > 200' with epochs counted from 0, i.e. 201 of 256)",
                          allowed="[0, 1]")
    alpha: float = param(2.0, "iterative normalisation: top alpha * target samples per class",
                         allowed="(0, inf)")
    iter_T: int = param(10, "alternations of the dual solver", allowed="[1, inf)")
    num_refine_iter: int = param(10, "steps between refinements", allowed="[1, inf)")


def solve_darp(q: torch.Tensor, target: torch.Tensor, iterations: int,
               newton_steps: int = 30) -> torch.Tensor:
    """The refined labels X of the module docstring (float64 throughout)."""
    q, target = q.double(), target.double()
    w = 1.0 / (-(q * torch.log(q + 1e-6)).sum(dim=1))  # 1 / entropy
    a_e = q / math.e
    nu = torch.zeros(q.shape[1], dtype=torch.float64)
    y = torch.exp(-nu[None, :] / w[:, None])
    for _ in range(iterations):
        x = 1.0 / (a_e * y).sum(dim=1)  # rows sum to one
        coef = a_e * x[:, None]  # [N, K]
        for _ in range(newton_steps):  # sum_i coef_ik exp(-nu_k / w_i) = target_k
            e = torch.exp(-nu[None, :] / w[:, None])
            g = (coef * e).sum(dim=0) - target
            dg = -(coef * e / w[:, None]).sum(dim=0)
            step = g / dg
            nu = nu - step
            if bool((step.abs() < 1e-10).all()):
                break
        y = torch.exp(-nu[None, :] / w[:, None])
    x = 1.0 / (a_e * y).sum(dim=1)
    return a_e * x[:, None] * y


def normalise_towards(q: torch.Tensor, target: torch.Tensor, alpha: float) -> torch.Tensor:
    """DARP's iterative normalisation: each class's top int(alpha * target_k) samples are
    scaled so that their mass matches the target; the rest become nearly uniform."""
    n, k = q.shape
    chosen = torch.zeros(n, k, dtype=q.dtype)
    mass = torch.zeros(k, dtype=q.dtype)
    for c in range(k):
        top = q[:, c].sort(descending=True)
        m = int(alpha * float(target[c]))
        chosen[top.indices[:m], c] = 1.0
        mass[c] = top.values[:m].sum()
    scale = chosen * ((target + 1e-6) / (mass + 1e-6))[None, :]
    scaled = q * scale + 1e-6
    return scaled / scaled.sum(dim=1, keepdim=True)


@IMBALANCE.register("darp")
class DARP(ImbalanceMethod):
    name = "darp"
    Params = DARPParams
    needs_views = frozenset({"ulb_weak"})

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.saved = torch.full((self.num_ulb, self.num_classes), 1.0 / self.num_classes,
                                dtype=torch.float64)
        self.refined = self.saved.clone()
        #: the step of the last refinement (-1: none yet)
        self.refined_at = -1

    def target(self) -> torch.Tensor:
        counts = self.info.lb_class_counts.double()
        return counts / counts.sum() * self.num_ulb

    def refine(self) -> None:
        q = normalise_towards(self.saved, self.target(), self.p.alpha)
        self.refined = solve_darp(q, self.target(), self.p.iter_T)

    def adjust_outputs(self, out: Outputs, batch: Batch, iteration: int) -> Outputs:
        weak = out.logits["ulb_weak"]
        probs = torch.softmax(weak.detach().float(), dim=-1)
        if batch.idx_ulb is None:
            raise ValueError("darp needs the unlabelled samples' indices")
        idx = batch.idx_ulb.cpu()
        self.saved[idx] = probs.double().cpu()
        if iteration < self.p.warmup * self.num_iterations:
            return out
        if iteration % self.p.num_refine_iter == 0:
            self.refine()
            self.refined_at = iteration
        if self.refined_at < 0:
            return out  # after the warm-up, before the first refinement: the base's labels
        return relabel(out, self.refined[idx].argmax(dim=1))  # confidence stays the model's

    def state_dict(self) -> dict[str, Any]:
        return {"saved": self.saved.clone(), "refined": self.refined.clone(),
                "refined_at": self.refined_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.saved = state["saved"].clone()
        self.refined = state["refined"].clone()
        self.refined_at = int(state["refined_at"])
