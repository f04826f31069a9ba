"""Optimiser parameter groups and the learning-rate schedule, built once for every backbone."""

from __future__ import annotations

import math
import re

import torch
from torch import nn

from semibench.train.config import TrainConfig


def layer_ids(model: nn.Module) -> dict[str, int]:
    """Map each parameter name to a layer id from the model's ``group_matcher``: the stem is
    0, blocks follow in order, and names the matcher does not match (the head) come last."""
    matcher = model.group_matcher()
    stem = re.compile(matcher["stem"])
    blocks = [(re.compile(p), ordinal) for p, ordinal in matcher["blocks"]]
    raw: dict[str, float] = {}
    for name, _ in model.named_parameters():
        if stem.match(name):
            raw[name] = -1
            continue
        for pattern, ordinal in blocks:
            m = pattern.match(name)
            if m:
                raw[name] = float(m.group(1)) if ordinal is None else float(ordinal[0])
                break
        else:
            raw[name] = math.inf
    order = sorted({v for v in raw.values() if v not in (-1, math.inf)})
    rank = {v: i + 1 for i, v in enumerate(order)}
    head = len(order) + 1
    return {n: 0 if v == -1 else head if v == math.inf else rank[v] for n, v in raw.items()}


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Groups by (layer, decay): lr = base lr * layer_decay^(last layer - layer); no weight
    decay on 1-D parameters (norms, biases) and the model's ``no_weight_decay`` names."""
    ids = layer_ids(model)
    last = max(ids.values())
    skip = model.no_weight_decay()
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = param.ndim > 1 and name not in skip
        layer = ids[name]
        key = (layer, decay)
        if key not in groups:
            scale = cfg.layer_decay ** (last - layer)
            groups[key] = {
                "params": [],
                "lr": cfg.lr * scale,
                "lr_scale": scale,
                "weight_decay": cfg.weight_decay if decay else 0.0,
            }
        groups[key]["params"].append(param)
    return [groups[k] for k in sorted(groups)]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise ValueError(f"train.optimizer={cfg.optimizer!r}; allowed: adamw, sgd")


def cosine_factor(step: int, total: int, warmup: int) -> float:
    """USB's schedule: linear warm-up, then lr0 * cos(7*pi/16 * progress) (ends near 0.2 lr0)."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, math.cos(7.0 * math.pi / 16.0 * progress))


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    # LambdaLR scales each group's own initial lr, so layer-wise scales are preserved
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: cosine_factor(step, cfg.iterations, cfg.warmup_iterations)
    )
