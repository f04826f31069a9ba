"""Loss pieces shared by the SSL algorithms."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy with hard (int) or soft (probability) targets."""
    if targets.dtype in (torch.int64, torch.int32):
        return F.cross_entropy(logits, targets, reduction="none")
    return -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1)


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32
            ) -> torch.Tensor:
    """``F.one_hot`` without its range check, which reads the labels back from the device."""
    out = torch.zeros(len(labels), num_classes, dtype=dtype, device=labels.device)
    return out.scatter_(1, labels.long().unsqueeze(1), 1.0)


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


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """MixMatch's Sharpen: p^(1/T) / sum p^(1/T)."""
    return pseudo_label(probs, hard=False, temperature=temperature)


def mse_probs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample mean over classes of (softmax(logits) - targets)^2 (Pi-model, MeanTeacher)."""
    return (torch.softmax(logits, dim=-1) - targets).pow(2).mean(dim=-1)


def kl_div(target_probs: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(target || softmax(logits))."""
    log_q = F.log_softmax(logits, dim=-1)
    return (target_probs * (torch.log(target_probs.clamp_min(1e-12)) - log_q)).sum(dim=-1)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Per-sample entropy H(p)."""
    return -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=-1)


def linear_ramp(iteration: int, num_iterations: int, warm_up: float) -> float:
    """USB's unsupervised warm-up: clip(it / (warm_up * num_iterations), 0, 1)."""
    if warm_up <= 0:
        return 1.0
    return min(max(iteration / (warm_up * num_iterations), 0.0), 1.0)
