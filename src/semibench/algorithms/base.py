"""The algorithm interface.

An algorithm declares the views it needs, receives the model outputs on them and returns its
loss. The trainer owns everything else (sampling, views, the forward pass, autocast, backward,
optimiser, EMA, evaluation, checkpoints), so an algorithm file reads like its paper.

Output keys are ``"<set>_<view>"``: ``lb_weak``, ``ulb_weak``, ``ulb_strong``, ... Outputs of the
views named in ``target_views`` are computed without gradients (they are teacher targets).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from semibench.registry import Registry

ALGORITHMS: Registry[type[Algorithm]] = Registry("algorithm")


@dataclass
class Batch:
    """One training step's data: stored inputs per view, labels and unlabelled indices."""

    x_lb: dict[str, torch.Tensor]
    y_lb: torch.Tensor
    x_ulb: dict[str, torch.Tensor] = field(default_factory=dict)
    idx_ulb: torch.Tensor | None = None
    #: true labels of the unlabelled samples: for logging pseudo-label quality only
    y_ulb: torch.Tensor | None = None


@dataclass
class Outputs:
    logits: dict[str, torch.Tensor]
    feats: dict[str, torch.Tensor]


@dataclass
class LossOutput:
    loss: torch.Tensor
    log: dict[str, float]
    #: per unlabelled sample weight in [0, 1] (quantity of pseudo-labels)
    mask: torch.Tensor | None = None
    #: hard pseudo-labels (their accuracy under ``mask`` is the quality)
    pseudo_label: torch.Tensor | None = None


@dataclass
class Params:
    """Hyper-parameters shared by every algorithm."""


class Algorithm:
    name: ClassVar[str]
    Params: ClassVar[type] = Params
    #: views of the labelled and unlabelled batch the algorithm needs
    lb_views: ClassVar[tuple[str, ...]] = ("weak",)
    ulb_views: ClassVar[tuple[str, ...]] = ()
    #: outputs computed without gradients (pseudo-label / teacher inputs)
    target_views: ClassVar[frozenset[str]] = frozenset()
    #: train on every label of the pool (the fully supervised upper bound)
    uses_all_labels: ClassVar[bool] = False

    def __init__(self, params: Any, *, num_classes: int, num_iterations: int, num_ulb: int):
        self.p = params
        self.num_classes = num_classes
        self.num_iterations = num_iterations
        self.num_ulb = num_ulb

    # ------------------------------------------------------------------ forward pass
    def forward(self, model: nn.Module, x: dict[str, torch.Tensor], cat: bool) -> Outputs:
        """Run ``model`` on every view; ``cat`` forwards all views in one batch (so batch norm
        sees labelled and unlabelled samples together) and detaches the target views."""
        grad_keys = [k for k in x if k not in self.target_views]
        target_keys = [k for k in x if k in self.target_views]
        logits: dict[str, torch.Tensor] = {}
        feats: dict[str, torch.Tensor] = {}

        def run(keys: list[str]) -> None:
            if not keys:
                return
            inputs = torch.cat([x[k] for k in keys])
            f = model.forward_features(inputs)
            z = model.forward_head(f)
            for k, fk, zk in zip(keys, f.split([len(x[k]) for k in keys]),
                                 z.split([len(x[k]) for k in keys]), strict=True):
                feats[k], logits[k] = fk, zk

        if cat:
            run(grad_keys + target_keys)
            for k in target_keys:
                logits[k], feats[k] = logits[k].detach(), feats[k].detach()
        else:
            run(grad_keys)
            with torch.no_grad():
                run(target_keys)
        return Outputs(logits=logits, feats=feats)

    # ------------------------------------------------------------------ the algorithm
    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values to restore the algorithm exactly on resume."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{self.name} has no state but the checkpoint holds {list(state)}")


def make_params(name: str, values: dict[str, Any] | None) -> Any:
    """Build an algorithm's typed parameters; unknown keys name the algorithm and the key."""
    cls = ALGORITHMS.get(name).Params
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values or {}) - known)
    if unknown:
        raise ValueError(
            f"algorithm_params.{name}: unknown parameter(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(known)) or 'none'}"
        )
    params = cls(**(values or {}))
    check = getattr(params, "check", None)
    if check is not None:
        check(name)
    return params


def create_algorithm(name: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Algorithm:
    """The only constructor of algorithms."""
    cls = ALGORITHMS.get(name)
    return cls(make_params(name, params), **kwargs)
