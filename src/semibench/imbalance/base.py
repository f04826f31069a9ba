"""Imbalanced SSL by composition: a base algorithm plus an imbalance method, by configuration.

USB builds ``class DummyClass(ImbAlg, BaseAlg)`` at run time, so each method reaches into its
base through ``super()`` and attribute names. Here an :class:`ImbalanceMethod` sees the base
only through these narrow points, and :class:`Composed` presents the plain ``Algorithm``
interface to the trainer:

    out    = method.complete_outputs(base.forward(x))   # features the base did not keep
    out'   = method.adjust_outputs(out)          # e.g. debiased / refined weak logits
    result = base.compute_loss(out', batch)      # the base algorithm, unchanged
    result = method.adjust_loss(result, out')    # e.g. ABC's auxiliary classifier loss
    eval   = method.predictor(model)             # e.g. ABC predicts with its balanced head

plus ``bind(base)`` for a method that replaces one documented variation point of its base
(Adsh replaces FixMatch's ``mask()``). Compositions are built by the composition root,
:mod:`semibench.compose`; a run carries ``algorithm`` and ``imbalance`` as separate fields,
labelled ``<base>_<method>`` (``fixmatch_abc``, USB's own name) for run directories, the report
and USB's published numbers; its hyper-parameters are ``algorithm_params.<base>`` and
``imbalance_params.<method>``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from semibench.algorithms.base import (
    Algorithm,
    Batch,
    DataInfo,
    LossOutput,
    NoParams,
    Outputs,
)
from semibench.registry import Registry

IMBALANCE: Registry[type[ImbalanceMethod]] = Registry("imbalance method")


class ImbalanceMethod:
    """One imbalance method; every hook defaults to "no change", so a method file holds only
    the maths its paper adds to the base algorithm."""

    name: ClassVar[str]
    Params: ClassVar[type] = NoParams
    #: the base algorithms it composes with; None: any base that has ``needs_views``
    bases: ClassVar[frozenset[str] | None] = None
    #: outputs the method reads (``"<set>_<view>"``); a base without them is refused
    needs_views: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, params: Any, *, num_classes: int, num_iterations: int, num_ulb: int):
        self.p = params
        self.num_classes = num_classes
        self.num_iterations = num_iterations
        self.num_ulb = num_ulb
        self.model: nn.Module | None = None
        self.info: DataInfo | None = None

    def build_modules(self, num_features: int) -> dict[str, nn.Module]:
        """Extra heads, attached as ``model.ssl_heads[name]`` (optimiser, EMA, checkpoint)."""
        return {}

    def attach(self, model: nn.Module, ema_model: nn.Module | None, info: DataInfo) -> None:
        self.model, self.info = model, info

    def bind(self, base: Algorithm) -> None:
        """Called once with the base algorithm (after ``attach``)."""

    def complete_outputs(self, model: nn.Module, x: dict[str, torch.Tensor],
                         out: Outputs) -> Outputs:
        """Add outputs the method reads that the base's own forward did not keep (ReMixMatch
        forwards mixed batches, so it has no labelled features): an extra pass, once."""
        return out

    def adjust_outputs(self, out: Outputs, batch: Batch, iteration: int) -> Outputs:
        return out

    def adjust_loss(self, result: LossOutput, out: Outputs, batch: Batch,
                    iteration: int) -> LossOutput:
        return result

    def predictor(self, model: nn.Module) -> nn.Module:
        """The module evaluation runs (default: the model itself)."""
        return model

    #: see :attr:`Algorithm.generations` (CReST); a method may set it from its parameters
    generations: int = 1
    #: the ``Params`` field that sets ``generations`` (None: one generation), so that a
    #: config is checked against it before anything runs
    generations_param: ClassVar[str | None] = None

    def milestones(self) -> tuple[int, ...]:
        """See :meth:`Algorithm.milestones`."""
        return ()

    def on_milestone(self, iteration: int, data: Any) -> None:
        """See :meth:`Algorithm.on_milestone`; ``data`` is the run's
        :class:`~semibench.algorithms.base.TrainingPort`."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{self.name} has no state but the checkpoint holds {list(state)}")


@dataclass
class ComposedParams:
    """The base's and the method's typed parameters, side by side."""

    base: Any
    imbalance: Any


class Composed(Algorithm):
    """A base algorithm and an imbalance method, presented to the trainer as one algorithm."""

    Params = ComposedParams

    def __init__(self, params: ComposedParams, *, base: type[Algorithm],
                 method: type[ImbalanceMethod], name: str, num_classes: int,
                 num_iterations: int, num_ulb: int):
        super().__init__(params, num_classes=num_classes, num_iterations=num_iterations,
                         num_ulb=num_ulb)
        sizes = dict(num_classes=num_classes, num_iterations=num_iterations, num_ulb=num_ulb)
        self.base = base(params.base, **sizes)
        self.method = method(params.imbalance, **sizes)
        self.name = name  # type: ignore[misc]  # the run's label (semibench.spec.run_label)
        # the trainer reads these from the instance: they are the base's
        self.lb_views = self.base.lb_views  # type: ignore[misc]
        self.ulb_views = self.base.ulb_views  # type: ignore[misc]
        self.target_views = self.base.target_views  # type: ignore[misc]
        self.uses_all_labels = self.base.uses_all_labels  # type: ignore[misc]
        self.generations = self.method.generations

    def build_modules(self, num_features: int) -> dict[str, nn.Module]:
        heads = self.base.build_modules(num_features)
        extra = self.method.build_modules(num_features)
        clash = sorted(set(heads) & set(extra))
        if clash:
            raise ValueError(f"{self.name}: both define head(s) {', '.join(clash)}")
        return {**heads, **extra}

    def attach(self, model: nn.Module, ema_model: nn.Module | None, info: DataInfo) -> None:
        super().attach(model, ema_model, info)
        self.base.attach(model, ema_model, info)
        self.method.attach(model, ema_model, info)
        self.method.bind(self.base)

    def forward(self, model: nn.Module, x: dict[str, torch.Tensor], cat: bool) -> Outputs:
        return self.method.complete_outputs(model, x, self.base.forward(model, x, cat))

    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        out = self.method.adjust_outputs(out, batch, iteration)
        result = self.base.compute_loss(out, batch, iteration)
        return self.method.adjust_loss(result, out, batch, iteration)

    def predictor(self, model: nn.Module) -> nn.Module:
        return self.method.predictor(model)

    def milestones(self) -> tuple[int, ...]:
        return self.method.milestones()

    def on_milestone(self, iteration: int, data: Any) -> None:
        self.method.on_milestone(iteration, data)

    def state_dict(self) -> dict[str, Any]:
        return {"base": self.base.state_dict(), "imbalance": self.method.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base.load_state_dict(state.get("base", {}))
        self.method.load_state_dict(state.get("imbalance", {}))


class HeadPredictor(nn.Module):
    """Evaluation through one of the model's extra heads, ``ssl_heads[head](features)`` (ABC,
    TRAS); otherwise it is the model (inference calls ``prepare_inputs`` and the like)."""

    def __init__(self, model: nn.Module, head: str) -> None:
        super().__init__()
        self.model = model
        self.head = head

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("model"), name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.ssl_heads[self.head](self.model.forward_features(x))


def relabel(out: Outputs, new_class: torch.Tensor) -> Outputs:
    """``out`` with the weak view's class moved to ``new_class`` and its confidence kept: the
    model's top probability and the new class's entry swap places. The base then masks by
    the model's confidence and labels with the method's class, as USB's pseudo-labelling
    hooks do (DARP, DASO)."""
    weak = out.logits["ulb_weak"]
    probs = torch.softmax(weak.detach().float(), dim=-1)
    old = probs.argmax(dim=-1)
    new_class = new_class.to(probs.device)
    rows = torch.arange(len(probs), device=probs.device)
    swapped = probs.clone()
    swapped[rows, new_class] = probs[rows, old]
    swapped[rows, old] = probs[rows, new_class]
    logits = dict(out.logits)
    logits["ulb_weak"] = torch.log(swapped.clamp_min(1e-30)).to(weak.dtype)
    return dataclasses.replace(out, logits=logits)


def fill_features(model: nn.Module, x: dict[str, torch.Tensor], out: Outputs,
                  keys: frozenset[str], no_grad: frozenset[str]) -> Outputs:
    """Features of ``keys`` that the base's forward did not keep (ReMixMatch forwards mixed
    batches): an extra pass each, without gradient for the ``no_grad`` (teacher) views."""
    for key in sorted(keys - set(out.feats)):
        if key in no_grad:
            with torch.no_grad():
                out.feats[key] = model.forward_features(x[key])
        else:
            out.feats[key] = model.forward_features(x[key])
    return out
