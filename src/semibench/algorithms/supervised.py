"""Supervised baseline: cross-entropy on the labelled subset only (USB's ``supervised``)."""

from __future__ import annotations

from semibench.algorithms.base import ALGORITHMS, Algorithm, Batch, LossOutput, Outputs
from semibench.algorithms.losses import ce_loss


@ALGORITHMS.register("supervised")
class Supervised(Algorithm):
    name = "supervised"
    lb_views = ("weak",)

    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        sup = ce_loss(out.logits["lb_weak"], batch.y_lb).mean()
        return LossOutput(loss=sup, log={"sup_loss": sup.detach()})
