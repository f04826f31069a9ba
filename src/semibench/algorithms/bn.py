"""Batch-norm statistics freezing: forward passes that must not update the running statistics
(USB's Bn_Controller), e.g. the unlabelled passes of the Pi-model, MixMatch or VAT."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def bn_frozen(model: nn.Module) -> Iterator[None]:
    """Inside the block, batch-norm layers in train mode normalise with the batch's statistics
    but leave their running statistics untouched.

    USB backs the running statistics up and restores them in place afterwards; with autograd
    that breaks ``backward()`` ("modified by an inplace operation"), so instead tracking is
    switched off for the block. Layers in eval mode are left alone: without tracking they would
    normalise with batch statistics.
    """
    switched = [
        m for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
    ]
    for m in switched:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in switched:
            m.track_running_stats = True
