"""Trainer settings: one dataclass, defaults overridden by the task and then the config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: the learning-rate schedules of ``train.scheduler`` (semibench.train.optim)
SCHEDULERS = ("constant", "cosine")
#: ``train.keep_weights``: which model weights a finished run keeps -> the checkpoint names
#: (``semibench predict --checkpoint``) whose file stays in the run directory
KEEP_WEIGHTS: dict[str, tuple[str, ...]] = {
    "best": ("best",), "last": ("last",), "both": ("best", "last"), "none": ()}
#: keys added after runs existed: in a run's settings only where they differ from their
#: default, so that adding one changes neither the settings nor the Snakemake params (and so
#: never reruns) the finished runs of existing configs (as semibench.spec's optional keys)
OPTIONAL_KEYS = ("keep_weights",)


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
    #: the model weights a finished run keeps in its directory: "best" (``model_best.pt``,
    #: the evaluation with the lowest validation error), "last" (``model_last.pt``, the
    #: final weights), "both" or "none". Default "best": it is what ``semibench predict``
    #: uses unless told otherwise and what ``semibench evaluate`` checks, and it halves the
    #: disk of "both" (a BERT-base run keeps 440 MB instead of 880 MB; usb.yaml about half a
    #: terabyte instead of one). The numbers a run records (metrics.json, curve.csv) are the
    #: same whatever it keeps. Weights not kept are never written; ``checkpoint.pt`` (what an
    #: interrupted run resumes from) is kept while the run trains and removed when it
    #: finishes, whatever this says
    keep_weights: str = "best"

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"train.scheduler={self.scheduler!r}; allowed: {', '.join(SCHEDULERS)}")
        if self.keep_weights not in KEEP_WEIGHTS:
            raise ValueError(f"train.keep_weights={self.keep_weights!r}; allowed: "
                             f"{', '.join(KEEP_WEIGHTS)}")

    @property
    def kept(self) -> tuple[str, ...]:
        """The checkpoints ("best", "last") whose weights a finished run keeps."""
        return KEEP_WEIGHTS[self.keep_weights]

    def to_settings(self) -> dict[str, Any]:
        """The settings as a run records them (its ``train`` section): every field, except the
        :data:`OPTIONAL_KEYS` at their default."""
        values = dataclasses.asdict(self)
        for key in OPTIONAL_KEYS:
            if values[key] == getattr(TrainConfig, key):
                del values[key]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"train: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**values)
