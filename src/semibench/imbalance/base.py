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
(Adsh replaces FixMatch's ``mask()``). A composition is named ``<base>_<method>``
(``fixmatch_abc``), USB's own name for it, so run directories, the report and USB's published
numbers line up; its hyper-parameters are ``algorithm_params.<base>`` and
``imbalance_params.<method>``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from semibench.algorithms.base import (
    ALGORITHMS,
    Algorithm,
    Batch,
    DataInfo,
    LossOutput,
    NoParams,
    Outputs,
    check_params,
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

    def milestones(self) -> tuple[int, ...]:
        """See :meth:`Algorithm.milestones`."""
        return ()

    def on_milestone(self, iteration: int, data: Any) -> None:
        """See :meth:`Algorithm.on_milestone`; ``data`` is a
        :class:`semibench.train.access.TrainingData`."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{self.name} has no state but the checkpoint holds {list(state)}")


def split_name(name: str) -> tuple[str, str] | None:
    """``"fixmatch_abc"`` -> ``("fixmatch", "abc")``; None for a name that is no composition
    (a registered algorithm's own name always wins)."""
    if name in ALGORITHMS:
        return None
    for i, ch in enumerate(name):
        if ch == "_" and name[:i] in ALGORITHMS and name[i + 1:] in IMBALANCE:
            return name[:i], name[i + 1:]
    return None


def is_algorithm(name: str) -> bool:
    return name in ALGORITHMS or split_name(name) is not None


def check_composition(name: str) -> None:
    """One-line ``ValueError`` for a composition that cannot run (before anything runs)."""
    parts = split_name(name)
    if parts is None:
        raise ValueError(f"unknown algorithm {name!r}; allowed: {', '.join(ALGORITHMS.names())}"
                         f", or <algorithm>_<imbalance method> with a method among "
                         f"{', '.join(IMBALANCE.names())}")
    base_name, method_name = parts
    method, base = IMBALANCE.get(method_name), ALGORITHMS.get(base_name)
    if method.bases is not None and base_name not in method.bases:
        raise ValueError(f"{name}: {method_name} composes only with "
                         f"{', '.join(sorted(method.bases))}, not {base_name}")
    views = {f"lb_{v}" for v in base.lb_views} | {f"ulb_{v}" for v in base.ulb_views}
    missing = sorted(method.needs_views - views)
    if missing:
        raise ValueError(f"{name}: {method_name} needs the base's {', '.join(missing)} "
                         f"outputs, which {base_name} does not compute")


@dataclass
class ComposedParams:
    """The base's and the method's typed parameters, side by side."""

    base: Any
    imbalance: Any


def make_method_params(name: str, values: dict[str, Any] | None) -> Any:
    """A method's typed parameters; errors name ``imbalance_params.<name>.<key>``."""
    cls = IMBALANCE.get(name).Params
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values or {}) - known)
    if unknown:
        raise ValueError(f"imbalance_params.{name}: unknown parameter(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(sorted(known)) or 'none'}")
    params = cls(**(values or {}))
    try:
        check_params(name, params)
    except ValueError as err:
        raise ValueError(str(err).replace("algorithm_params.", "imbalance_params.", 1)) from None
    return params


def make_composed_params(name: str, values: dict[str, Any] | None,
                         domain: str | None = None) -> ComposedParams:
    """``values`` is ``{"base": {...}, "imbalance": {...}}`` (a run's stored settings)."""
    from semibench.algorithms.base import make_params

    check_composition(name)
    base_name, method_name = split_name(name)  # type: ignore[misc]
    values = values or {}
    unknown = sorted(set(values) - {"base", "imbalance"})
    if unknown:
        raise ValueError(f"algorithm_params of {name}: unknown key(s) {', '.join(unknown)}; "
                         "allowed: base, imbalance")
    return ComposedParams(base=make_params(base_name, values.get("base"), domain),
                          imbalance=make_method_params(method_name, values.get("imbalance")))


class Composed(Algorithm):
    """A base algorithm and an imbalance method, presented to the trainer as one algorithm."""

    Params = ComposedParams

    def __init__(self, params: ComposedParams, *, base: type[Algorithm],
                 method: type[ImbalanceMethod], num_classes: int, num_iterations: int,
                 num_ulb: int):
        super().__init__(params, num_classes=num_classes, num_iterations=num_iterations,
                         num_ulb=num_ulb)
        sizes = dict(num_classes=num_classes, num_iterations=num_iterations, num_ulb=num_ulb)
        self.base = base(params.base, **sizes)
        self.method = method(params.imbalance, **sizes)
        self.name = f"{self.base.name}_{self.method.name}"  # type: ignore[misc]
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


def create_composed(name: str, params: dict[str, Any] | None, domain: str | None = None,
                    **kwargs: Any) -> Composed:
    """The constructor of compositions (``create_algorithm`` calls it for such names)."""
    typed = make_composed_params(name, params, domain)
    base_name, method_name = split_name(name)  # type: ignore[misc]
    return Composed(typed, base=ALGORITHMS.get(base_name), method=IMBALANCE.get(method_name),
                    **kwargs)


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
