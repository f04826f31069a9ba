"""Exponential moving average of the model weights (the evaluated model when ema_m > 0)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """shadow = m * shadow + (1 - m) * param after every step; buffers are copied as they are."""

    def __init__(self, model: nn.Module, momentum: float):
        self.momentum = momentum
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        m = self.momentum
        for shadow, live in zip(self.model.parameters(), model.parameters(), strict=True):
            shadow.mul_(m).add_(live.detach(), alpha=1.0 - m)
        for shadow, live in zip(self.model.buffers(), model.buffers(), strict=True):
            shadow.copy_(live)
