"""FlexMatch (Zhang et al., NeurIPS 2021): FixMatch with curriculum per-class thresholds.

    p = softmax(f(weak(u)))                                   (no gradient)
    beta_c = (#unlabelled samples confidently selected as c) / max(counts incl. unselected)
    mask = 1[max p >= p_cutoff * M(beta_{argmax p})],  M(b) = b / (2 - b)   (previous state)
    selected_label[idx] = argmax p  where max p >= p_cutoff;  then recompute beta
    L = CE(f(weak(x)), y) + lambda_u * mean(mask * CE(f(strong(u)), y_hat))

``idx`` is the position of each sample in the unlabelled pool (``batch.idx_ulb``); the pool
includes the labelled samples when the split does (USB's ``include_lb_to_ulb``).

Deviations from USB:

* ``FlexMatchThresholds``: beta keeps updating once every sample has been selected as one
  class; USB's ``max(counter) < num_ulb`` guard freezes it.
* ``hard_label: false`` sharpens the soft target by T; USB ignores T there (see fixmatch.py;
  ``T: 1.0`` reproduces USB).

Learning-rate warm-up. USB's committed FlexMatch configs for CIFAR-100, EuroSAT, TissueMNIST
and Semi-Aves have ``num_warmup_iter: 0`` while every other USB config (FlexMatch on STL-10
and in NLP and audio included) has 5,120: ``config_generator_usb_cv.py`` starts with
``warmup = 0``, only STL-10 sets it to 5, and FlexMatch is the first algorithm generated, so
only its runs before the first STL-10 one see 0. USB's published FlexMatch numbers for those
four tasks come from those configs, so ``config/usb.yaml`` reproduces them with warm-up 0
for FlexMatch on those tasks only (a per-task ``algorithm_train``); everywhere else (and for any new task) FlexMatch keeps
the task's warm-up, the sane default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from semibench.algorithms.base import ALGORITHMS, Batch, param
from semibench.algorithms.fixmatch import FixMatch, FixMatchParams
from semibench.algorithms.thresholding import MAPPINGS, FlexMatchThresholds


@dataclass
class FlexMatchParams(FixMatchParams):
    thresh_warmup: bool = param(True, "count never-selected samples in the normaliser of "
                                "beta (slow start)")
    mapping: str = param("convex", "M(beta): convex b/(2-b) (paper, USB), linear b, concave "
                         "log2(1+b)", choices=tuple(sorted(MAPPINGS)))


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
