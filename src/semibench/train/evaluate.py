"""Evaluation on a held-out set: error and per-class accuracy, in percent."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from semibench.augment import ViewFn


@dataclass
class EvalResult:
    error: float
    per_class_accuracy: list[float]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    view: ViewFn,
    *,
    num_classes: int,
    batch_size: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
) -> EvalResult:
    was_training = model.training
    model.eval()
    preds = []
    generator = torch.Generator().manual_seed(0)  # the eval view is deterministic anyway
    for start in range(0, len(x), batch_size):
        inputs = view(x[start : start + batch_size], generator).to(device)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(inputs)
        preds.append(logits.argmax(dim=-1).cpu())
    model.train(was_training)
    pred = torch.cat(preds)
    correct = (pred == y).float()
    per_class = [
        float(100.0 * correct[y == c].mean()) if (y == c).any() else float("nan")
        for c in range(num_classes)
    ]
    return EvalResult(error=float(100.0 * (1.0 - correct.mean())), per_class_accuracy=per_class)
