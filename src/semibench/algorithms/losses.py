"""Loss pieces shared by the SSL algorithms."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy with hard (int) or soft (probability) targets."""
    if targets.dtype in (torch.int64, torch.int32):
        return F.cross_entropy(logits, targets, reduction="none")
    return -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """USB's masked mean: sum(mask * value) / batch size (not / mask sum)."""
    return (values * mask).mean()


def pseudo_label(
    probs: torch.Tensor, hard: bool = True, temperature: float = 1.0
) -> torch.Tensor:
    """Hard argmax labels, or probabilities sharpened by ``temperature`` (p^(1/T), renormalised)."""
    if hard:
        return probs.argmax(dim=-1)
    sharpened = probs ** (1.0 / temperature)
    return sharpened / sharpened.sum(dim=-1, keepdim=True)


def fixed_threshold_mask(probs: torch.Tensor, threshold: float) -> torch.Tensor:
    """1 where the maximum class probability reaches ``threshold``."""
    return (probs.max(dim=-1).values >= threshold).to(probs.dtype)
