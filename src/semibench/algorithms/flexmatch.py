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

from semibench.algorithms.base import ALGORITHMS, Batch, check_param
from semibench.algorithms.fixmatch import FixMatch, FixMatchParams
from semibench.algorithms.thresholding import MAPPINGS, FlexMatchThresholds


@dataclass
class FlexMatchParams(FixMatchParams):
    #: count never-selected samples in the normaliser of beta (slow start)
    thresh_warmup: bool = True
    #: mapping M(beta): "convex" b/(2-b) (paper and USB), "linear" b, "concave" log2(1+b)
    mapping: str = "convex"

    def check(self, name: str) -> None:
        super().check(name)
        check_param(name, "mapping", self.mapping, self.mapping in MAPPINGS,
                    f"one of {', '.join(sorted(MAPPINGS))}")


@ALGORITHMS.register("flexmatch")
class FlexMatch(FixMatch):
    """FixMatch whose mask uses the curriculum per-class thresholds."""

    name = "flexmatch"
    Params = FlexMatchParams

    def __init__(self, params: FlexMatchParams, **kwargs: Any):
        super().__init__(params, **kwargs)
        self.thresholds = FlexMatchThresholds(
            self.num_classes, self.num_ulb, params.p_cutoff,
            thresh_warmup=params.thresh_warmup, mapping=params.mapping)

    def mask(self, probs: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        if batch.idx_ulb is None:
            raise ValueError("flexmatch needs batch.idx_ulb (positions in the unlabelled pool)")
        used = self.thresholds.thresholds().mean().detach()  # the thresholds this step applies
        return self.thresholds(probs, batch.idx_ulb), {"threshold_mean": used}

    def state_dict(self) -> dict[str, Any]:
        return self.thresholds.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.thresholds.load_state_dict(state)
