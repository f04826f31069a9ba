"""Batch-norm statistics freezing: forward passes that must not update the running statistics
(USB's Bn_Controller), e.g. the unlabelled passes of the Pi-model, MixMatch or VAT."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def bn_frozen(model: nn.Module) -> Iterator[None]:
    """Run the block in train mode (batch statistics normalise) but restore every batch-norm
    running mean, variance and batch count afterwards."""
    saved = [
        (m, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, mean, var, count in saved:
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)
