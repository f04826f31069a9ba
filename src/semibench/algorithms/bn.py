"""Batch-norm statistics freezing: forward passes that must not update the running statistics
(USB's Bn_Controller), e.g. the unlabelled passes of the Pi-model, MixMatch or VAT."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from semibench.algorithms.base import Outputs


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


def forward_per_view(
    model: nn.Module, x: dict[str, torch.Tensor], no_grad: Collection[str] = ()
) -> Outputs:
    """One forward pass per view (USB's Π-model, MeanTeacher, PseudoLabel, VAT): labelled views
    update the batch-norm running statistics, unlabelled (``ulb_*``) views run with them frozen
    (each still normalised by its own batch statistics); views in ``no_grad`` keep no graph."""
    logits: dict[str, torch.Tensor] = {}
    feats: dict[str, torch.Tensor] = {}
    for key, xk in x.items():
        frozen = bn_frozen(model) if key.startswith("ulb_") else nullcontext()
        grad = torch.no_grad() if key in no_grad else nullcontext()
        with frozen, grad:
            feats[key] = model.forward_features(xk)
            logits[key] = model.forward_head(feats[key])
    return Outputs(logits=logits, feats=feats)
