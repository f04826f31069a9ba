"""Optimiser parameter groups and the learning-rate schedule, built once for every backbone."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch
from timm.models import group_parameters
from timm.optim import param_groups_layer_decay
from torch import nn

from semibench.train.config import SCHEDULERS, TrainConfig


def _ordinal_fn(model: nn.Module) -> Callable[[str], tuple[float, ...]]:
    """The model's ``group_matcher`` as the name -> ordinal function timm's grouping accepts:
    (0,) for the stem, (1, block) for blocks, (inf,) for the rest (the head). timm's own dict
    matching turns every regex group into a number, and our stem patterns use alternation
    groups (``vit\\.(cls_token|pos_embed|...)``), so the regexes are applied here."""
    matcher = model.group_matcher()
    stem = re.compile(matcher["stem"])
    blocks = [(re.compile(p), ordinal) for p, ordinal in matcher["blocks"]]

    def ordinal(name: str) -> tuple[float, ...]:
        if stem.match(name):
            return (0.0,)
        for pattern, fixed in blocks:
            m = pattern.match(name)
            if m:
                if fixed is not None:
                    return (1.0, float(fixed[0]))
                return (1.0, float(m.group(1)) if pattern.groups else 0.0)
        return (math.inf,)

    return ordinal


def layer_ids(model: nn.Module) -> dict[str, int]:
    """Map each parameter name to a layer id: the stem is 0, blocks follow in order, and names
    the matcher does not match (the head) come last (timm's ``group_parameters``)."""
    return group_parameters(model, _ordinal_fn(model), reverse=True)


class _TimmView:
    """What timm's ``param_groups_layer_decay`` reads from a model; it calls
    ``group_matcher(coarse=False)``, which our backbones do not take."""

    def __init__(self, model: nn.Module):
        self.named_parameters = model.named_parameters
        self._ordinal = _ordinal_fn(model)

    def group_matcher(self, coarse: bool = False) -> Callable[[str], tuple[float, ...]]:
        return self._ordinal


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """timm's layer-decay groups: lr_scale = layer_decay^(last layer - layer); no weight decay
    on 1-D parameters (norms, biases) and the model's ``no_weight_decay`` names. Each group also
    gets its absolute ``lr`` (USB's convention), which our scheduler then scales as a whole."""
    groups = param_groups_layer_decay(
        _TimmView(model),  # type: ignore[arg-type]
        weight_decay=cfg.weight_decay,
        no_weight_decay_list=sorted(model.no_weight_decay()),
        layer_decay=cfg.layer_decay,
    )
    for group in groups:
        group["lr"] = cfg.lr * group["lr_scale"]
    return groups


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


def constant_factor(step: int, warmup: int) -> float:
    """Linear warm-up, then lr0 for good (USB's imbalanced runs of non-ViT networks, where
    ``ImbAlgorithmBase.set_optimizer`` builds no scheduler; they have no warm-up)."""
    if step < warmup:
        return step / max(1, warmup)
    return 1.0


def lr_factor(cfg: TrainConfig) -> Callable[[int], float]:
    """The multiplier of lr0 after ``step`` optimiser steps under ``train.scheduler``."""
    if cfg.scheduler == "cosine":
        return lambda step: cosine_factor(step, cfg.iterations, cfg.warmup_iterations)
    if cfg.scheduler == "constant":
        return lambda step: constant_factor(step, cfg.warmup_iterations)
    raise ValueError(f"train.scheduler={cfg.scheduler!r}; allowed: {', '.join(SCHEDULERS)}")


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    # LambdaLR scales each group's own initial lr, so layer-wise scales are preserved; both
    # schedules are the same LambdaLR, so a checkpoint's scheduler state (the step count)
    # restores either one
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg))
