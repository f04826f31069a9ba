"""The small network of the algorithm tests: Linear - BatchNorm - ReLU features and a linear
head, deterministic (seeded initialisation, no dropout) and with batch-norm statistics, so a
test can follow what a step does to them."""

from __future__ import annotations

import torch
from torch import nn

from semibench.backbones.base import Backbone


class BNNet(Backbone):
    """``d`` inputs (``flatten``: of any shape, e.g. images [B, 1, 2, 2]) -> ``h`` features ->
    ``c`` logits; initialised from ``torch.manual_seed(seed)``."""

    def __init__(self, d: int = 4, h: int = 6, c: int = 3, seed: int = 0,
                 flatten: bool = False) -> None:
        super().__init__()
        torch.manual_seed(seed)
        layers = [nn.Flatten()] if flatten else []
        self.body = nn.Sequential(*layers, nn.Linear(d, h), nn.BatchNorm1d(h), nn.ReLU())
        self.num_features = h
        self.head = nn.Linear(h, c)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    @property
    def bn(self) -> nn.BatchNorm1d:
        return next(m for m in self.body if isinstance(m, nn.BatchNorm1d))

    def bn_state(self) -> list[torch.Tensor]:
        """Copies of the running mean, variance and batch count."""
        bn = self.bn
        return [bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()]


class FeatModel(nn.Module):
    """forward_features = identity, so a head's logits are fixed by its weights."""

    def __init__(self, heads: dict[str, nn.Module]):
        super().__init__()
        self.ssl_heads = nn.ModuleDict(heads)
        self.head = nn.Linear(2, 2)

    def forward_features(self, x):
        return x

    def forward_head(self, f):
        return self.head(f)
