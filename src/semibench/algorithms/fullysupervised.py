"""Fully supervised upper bound: the supervised loss on every label of the training pool."""

from __future__ import annotations

from semibench.algorithms.base import ALGORITHMS
from semibench.algorithms.supervised import Supervised


@ALGORITHMS.register("fullysupervised")
class FullySupervised(Supervised):
    name = "fullysupervised"
    uses_all_labels = True
