"""Extra heads some algorithms train on top of the backbone's pooled features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """Linear(d, d) - ReLU - Linear(d, out), L2-normalised (SimMatch, CoMatch)."""

    def __init__(self, in_features: int, out_features: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, in_features), nn.ReLU(inplace=True),
            nn.Linear(in_features, out_features),
        )

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(feats), dim=-1)


class RotationHead(nn.Module):
    """Predicts which of 4 rotations (0, 90, 180, 270 degrees) was applied (CRMatch):
    Linear(d, d) - ReLU - Linear(d, 4). ReMixMatch uses a single linear layer, as USB."""

    def __init__(self, in_features: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, in_features), nn.ReLU(inplace=True), nn.Linear(in_features, 4)
        )

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net(feats)


def rotate_batch(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Rotate each image ``x[i]`` ([B, C, H, W], square) by ``k[i] * 90`` degrees."""
    out = x.clone()
    for r in range(1, 4):
        idx = (k == r).nonzero(as_tuple=True)[0]
        if len(idx):
            out[idx] = torch.rot90(x[idx], r, dims=(2, 3))
    return out
