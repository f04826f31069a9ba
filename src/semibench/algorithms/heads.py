"""Extra heads some algorithms train on top of the backbone's pooled features."""

from __future__ import annotations

from collections.abc import Mapping

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


PROJ_NAMES = ("proj", "proj2", "proj3")


def projection_heads(num_features: int, size: int, epass: bool) -> dict[str, nn.Module]:
    """One projection head, or three for EPASS (ensemble projectors; SimMatch, CoMatch)."""
    names = PROJ_NAMES if epass else PROJ_NAMES[:1]
    return {n: ProjectionHead(num_features, size) for n in names}


def project(heads: Mapping[str, nn.Module], feats: torch.Tensor) -> torch.Tensor:
    """Unit embeddings (float32) of pooled features; EPASS averages its heads, renormalised."""
    names = [n for n in PROJ_NAMES if n in heads]
    if len(names) == 1:
        return heads[names[0]](feats).float()
    return F.normalize(torch.stack([heads[n](feats).float() for n in names]).mean(0), dim=-1)


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
    rotations = torch.stack([torch.rot90(x, r, dims=(2, 3)) for r in range(4)])
    # select rotation k[i] of sample i on the device (no per-rotation index lists to read back)
    return rotations[k.to(x.device).long(), torch.arange(len(x), device=x.device)]
