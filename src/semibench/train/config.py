"""Trainer settings: one dataclass, defaults overridden by the task and then the config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: the learning-rate schedules of ``train.scheduler`` (semibench.train.optim)
SCHEDULERS = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    #: optimiser steps (USB counts iterations, not epochs)
    iterations: int = 1000
    #: evaluate on validation and test every this many iterations (and at the last one)
    eval_every: int = 250
    #: labelled batch size; the unlabelled batch is ``uratio`` times larger
    batch_size: int = 32
    uratio: int = 3
    eval_batch_size: int = 256
    #: "sgd" (Nesterov momentum) or "adamw"
    optimizer: str = "sgd"
    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 5e-4
    #: layer-wise learning-rate decay (1.0 = off)
    layer_decay: float = 1.0
    #: learning-rate schedule after the warm-up: "cosine" (USB's lr0 * cos(7*pi/16 * progress))
    #: or "constant" (lr0 throughout: USB's imbalanced runs of non-ViT networks, whose
    #: ImbAlgorithmBase builds no scheduler)
    scheduler: str = "cosine"
    #: linear warm-up from 0 to lr0 over this many iterations (either schedule)
    warmup_iterations: int = 0
    #: EMA momentum of the evaluated model (0 = evaluate the live model, USB's default)
    ema_m: float = 0.0
    #: ramp the EMA momentum up as min(ema_m, (1 + t) / (10 + t)) (USB: fixed ema_m)
    ema_warmup: bool = True
    #: one forward pass over labelled + unlabelled views (batch norm sees the joint batch).
    #: Only models with batch norm honour it: without batch norm the joint and the split
    #: passes compute the same logits, and the split one runs the pseudo-label views without
    #: autograd (a third less backward work for FixMatch at uratio 1)
    use_cat: bool = True
    #: gradient-norm clipping (0 = off)
    clip_grad: float = 0.0
    #: "auto" (CUDA when available), "cpu" or "cuda"
    device: str = "auto"
    #: autocast dtype on CUDA: "none", "bf16" or "fp16" (with a gradient scaler); the CPU
    #: always runs float32
    amp: str = "bf16"
    #: torch.compile mode of the model: "none", "default" or "reduce-overhead" (CUDA graphs)
    compile: str = "none"
    #: prepare the views of step t + 1 while step t runs (a worker thread)
    prefetch: bool = True
    #: weights and activations of convolutional networks: "auto" (channels-last when the
    #: backbone declares it faster, e.g. WRN), "channels_last" or "contiguous"
    memory_format: str = "auto"

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"train.scheduler={self.scheduler!r}; allowed: {', '.join(SCHEDULERS)}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"train: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**values)
