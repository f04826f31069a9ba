"""FlexMatch (Zhang et al., NeurIPS 2021): FixMatch with curriculum per-class thresholds.

    p = softmax(f(weak(u)))                                   (no gradient)
    beta_c = (#unlabelled samples confidently selected as c) / max(counts incl. unselected)
    mask = 1[max p >= p_cutoff * M(beta_{argmax p})],  M(b) = b / (2 - b)   (previous state)
    selected_label[idx] = argmax p  where max p >= p_cutoff;  then recompute beta
    L = CE(f(weak(x)), y) + lambda_u * mean(mask * CE(f(strong(u)), y_hat))

``idx`` is the position of each sample in the unlabelled pool (``batch.idx_ulb``); the pool
includes the labelled samples when the split does (USB's ``include_lb_to_ulb``).
Deviation from USB: see ``FlexMatchThresholds`` (beta keeps updating once every sample has
been selected as one class; USB's ``max(counter) < num_ulb`` guard freezes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
from semibench.algorithms.losses import ce_loss, masked_mean, pseudo_label
from semibench.algorithms.thresholding import MAPPINGS, FlexMatchThresholds


@dataclass
class FlexMatchParams:
    #: upper confidence threshold tau in (0, 1] (reached by the best-learnt class)
    p_cutoff: float = 0.95
    #: weight lambda_u of the unsupervised loss (>= 0)
    lambda_u: float = 1.0
    #: count never-selected samples in the normaliser of beta (slow start)
    thresh_warmup: bool = True
    #: mapping M(beta): "convex" b/(2-b) (paper and USB), "linear" b, "concave" log2(1+b)
    mapping: str = "convex"
    #: hard (argmax) pseudo-labels; otherwise soft labels sharpened by T
    hard_label: bool = True
    #: sharpening temperature for soft pseudo-labels (> 0)
    T: float = 0.5

    def check(self, name: str) -> None:
        check_common(name, self, {"p_cutoff": "threshold", "lambda_u": "weight",
                                  "T": "temperature"})
        check_param(name, "mapping", self.mapping, self.mapping in MAPPINGS,
                    f"one of {', '.join(sorted(MAPPINGS))}")


@ALGORITHMS.register("flexmatch")
class FlexMatch(Algorithm):
    name = "flexmatch"
    Params = FlexMatchParams
    lb_views = ("weak",)
    ulb_views = ("weak", "strong")
    target_views = frozenset({"ulb_weak"})

    def __init__(self, params: FlexMatchParams, **kwargs: Any):
        super().__init__(params, **kwargs)
        self.thresholds = FlexMatchThresholds(
            self.num_classes, self.num_ulb, params.p_cutoff,
            thresh_warmup=params.thresh_warmup, mapping=params.mapping)

    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        if batch.idx_ulb is None:
            raise ValueError("flexmatch needs batch.idx_ulb (positions in the unlabelled pool)")
        # Labelled cross-entropy
        sup = ce_loss(out.logits["lb_weak"].float(), batch.y_lb).mean()

        # Pseudo-labels from the weak view, curriculum per-class mask
        probs = torch.softmax(out.logits["ulb_weak"].detach().float(), dim=-1)
        used = self.thresholds.thresholds().mean().item()  # the thresholds this step applies
        mask = self.thresholds(probs, batch.idx_ulb)
        target = pseudo_label(probs, hard=self.p.hard_label, temperature=self.p.T)

        # Consistency on the strong view
        unsup = masked_mean(ce_loss(out.logits["ulb_strong"].float(), target), mask)
        loss = sup + self.p.lambda_u * unsup
        return LossOutput(
            loss=loss,
            log={"sup_loss": sup.item(), "unsup_loss": unsup.item(),
                 "threshold_mean": used},
            mask=mask,
            pseudo_label=probs.argmax(dim=-1),
        )

    def state_dict(self) -> dict[str, Any]:
        return self.thresholds.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.thresholds.load_state_dict(state)
