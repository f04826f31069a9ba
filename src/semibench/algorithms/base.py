"""The algorithm interface.

An algorithm declares the views it needs, receives the model outputs on them and returns its
loss. The trainer owns everything else (sampling, views, the forward pass, autocast, backward,
optimiser, EMA, evaluation, checkpoints), so an algorithm file reads like its paper.

Output keys are ``"<set>_<view>"``: ``lb_weak``, ``ulb_weak``, ``ulb_strong``, ... Outputs of the
views named in ``target_views`` are computed without gradients (they are teacher targets).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

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
    #: positions of the labelled samples in the labelled set (0 .. num_lb - 1), e.g. for
    #: SimMatch's labelled memory bank
    idx_lb: torch.Tensor | None = None
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
    #: values to log: 0-d tensors (detached, left on the device: the trainer reads them at
    #: evaluation time, so a step never waits for the device) or plain numbers
    log: dict[str, torch.Tensor | float]
    #: per unlabelled sample weight in [0, 1] (quantity of pseudo-labels)
    mask: torch.Tensor | None = None
    #: hard pseudo-labels (their accuracy under ``mask`` is the quality)
    pseudo_label: torch.Tensor | None = None


class TrainingPort(Protocol):
    """What a method may use of the run's whole data between two steps (CReST pseudo-labels
    the unlabelled set, CoSSL draws its own batches and fits a classifier on features). The
    trainer hands an implementation (:class:`semibench.train.access.TrainingData`) through
    :attr:`DataInfo.data` and :meth:`Algorithm.on_milestone`; never the trainer itself."""

    @property
    def num_classes(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def seed(self) -> int: ...

    @property
    def eval_batch_size(self) -> int: ...

    #: the live model
    model: nn.Module | None

    @property
    def teacher(self) -> nn.Module:
        """The model evaluation uses (the EMA model, or the live one)."""
        ...

    def labelled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The labelled set now: stored-input indices and labels (CPU)."""
        ...

    def split_labelled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The split's own labelled set (before any method added to it)."""
        ...

    def unlabelled(self) -> torch.Tensor:
        """The unlabelled pool's stored-input indices (CPU)."""
        ...

    def set_labelled(self, index: torch.Tensor, labels: torch.Tensor) -> None:
        """Train on these samples with these (pseudo-)labels from the next step on."""
        ...

    def view(self, index: torch.Tensor, view: str, generator: torch.Generator) -> torch.Tensor:
        """One view of the stored inputs ``index``, on the training device."""
        ...

    def features(self, model: nn.Module, index: torch.Tensor, view: str = "eval",
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and logits of ``model`` (eval mode) on a view of every sample of ``index``."""
        ...


@dataclass
class DataInfo:
    """What an algorithm may know about the run's data (never the unlabelled labels)."""

    domain: str
    num_classes: int
    num_lb: int
    num_ulb: int
    #: labelled samples per class (e.g. ReMixMatch's target distribution)
    lb_class_counts: torch.Tensor
    #: the run's whole data (:class:`TrainingPort`) for a method that draws its own extra
    #: batches (CoSSL); None outside a trainer
    data: TrainingPort | None = None


@dataclass
class NoParams:
    """The hyper-parameters of an algorithm that has none (the supervised baselines)."""


class Algorithm:
    name: ClassVar[str]
    #: the hyper-parameter dataclass; its fields are declared with ``param()``
    Params: ClassVar[type] = NoParams
    #: per-domain defaults of ``Params`` fields (USB's per-domain settings), e.g.
    #: ``{"audio": {"T": 0.2}}``; the config's ``algorithm_params`` still win
    param_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    #: trainer settings this algorithm needs, per domain or ``"all"`` (e.g. MeanTeacher's
    #: ``ema_m``, MixMatch's ``uratio``). They override the task's built-in defaults; the
    #: config's ``train`` sections and ``algorithm_train`` still override them
    train_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    #: views of the labelled and unlabelled batch the algorithm needs; a trailing number
    #: asks for another independent draw of the same view ("strong2" = a second strong view)
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
        self.model: nn.Module | None = None
        self.ema_model: nn.Module | None = None
        self.info: DataInfo | None = None

    # ------------------------------------------------------------------ set-up
    def build_modules(self, num_features: int) -> dict[str, nn.Module]:
        """Extra trainable modules (projection or rotation heads). The trainer attaches them to
        the model as ``model.ssl_heads[name]`` so that the optimiser, EMA and checkpoints see
        them; they are not used at evaluation."""
        return {}

    def attach(self, model: nn.Module, ema_model: nn.Module | None, info: DataInfo) -> None:
        """Called by the trainer with the live model, the EMA model (None if ema_m = 0); again
        after a milestone that changed the labelled set or started a new generation."""
        self.model, self.ema_model, self.info = model, ema_model, info

    # ------------------------------------------------------------------ whole-data events
    #: the run trains this many times from a fresh model, its iterations split evenly and
    #: the learning-rate schedule restarting each time (CReST's generations)
    generations: int = 1

    def milestones(self) -> tuple[int, ...]:
        """Iterations before whose step :meth:`on_milestone` runs (besides every generation's
        start); no batch is prepared ahead across one."""
        return ()

    def on_milestone(self, iteration: int, data: TrainingPort) -> None:
        """Whole-data work between two steps (CReST pseudo-labels the unlabelled set, CoSSL
        fits its balanced classifier) through the run's :class:`TrainingPort`. It must depend only on the model, the
        data and the algorithm's checkpointed state, so that a resumed run repeats it."""

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

    # ------------------------------------------------------------------ evaluation
    def predictor(self, model: nn.Module) -> nn.Module:
        """The module that evaluation runs: the model itself, unless a method predicts with
        another head (ABC's class-balanced classifier)."""
        return model


def param(default: Any, help: str, *, allowed: str | None = None,
          choices: tuple[str, ...] | None = None) -> Any:
    """A hyper-parameter field, declared once: its default, its allowed values (an interval
    such as ``"(0, 1]"`` or ``"[0, inf)"``, or ``choices``) and one line of help. The shared
    ``check_params`` enforces it and ``semibench list --params`` shows it."""
    if allowed is not None:
        _interval(allowed)  # a typo in a declaration fails at import, not in a run
    return field(default=default,
                 metadata={"allowed": allowed, "choices": choices, "help": help})


def _interval(text: str) -> tuple[float, float, bool, bool]:
    """``"(0, 1]"`` -> (0.0, 1.0, low closed False, high closed True)."""
    t = text.strip()
    if len(t) < 5 or t[0] not in "[(" or t[-1] not in "])" or "," not in t:
        raise ValueError(f"interval {text!r}: write it as e.g. '(0, 1]' or '[0, inf)'")
    low, high = (float(v) for v in t[1:-1].split(","))
    return low, high, t[0] == "[", t[-1] == "]"


def in_interval(value: float, text: str) -> bool:
    low, high, low_closed, high_closed = _interval(text)
    above = value >= low if low_closed else value > low
    below = value <= high if high_closed else value < high
    return above and below


def describe_interval(text: str) -> str:
    """How an error states the rule: ``>= 0`` for ``[0, inf)``, ``in (0, 1]`` otherwise."""
    low, high, low_closed, _ = _interval(text)
    if high == float("inf"):
        return f"{'>=' if low_closed else '>'} {low:g}"
    return f"in {text}"


def _type_ok(value: Any, default: Any) -> bool:
    """A value against its field's default type: bools are not numbers, ints are floats."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


def check_params(name: str, params: Any) -> None:
    """The one check of every algorithm's hyper-parameters: each field's type and declared
    range or choices, then the joint rules of ``params.joint_rules()`` (relations between
    fields, which no single range can say). Errors name the config key."""
    def fail(key: str, value: object, rule: str) -> None:
        raise ValueError(f"algorithm_params.{name}.{key}={value!r}: must be {rule}")

    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if not _type_ok(value, f.default):
            fail(f.name, value, f"of type {type(f.default).__name__}")
        allowed, choices = f.metadata.get("allowed"), f.metadata.get("choices")
        if allowed is not None and not in_interval(value, allowed):
            fail(f.name, value, describe_interval(allowed))
        if choices is not None and value not in choices:
            fail(f.name, value, f"one of {', '.join(choices)}")
    joint_rules = getattr(params, "joint_rules", None)
    for key, ok, rule in joint_rules() if joint_rules else ():
        if not ok:
            fail(key, getattr(params, key), rule)


def param_table(name: str, registry: Registry[Any] | None = None) -> list[dict[str, str]]:
    """Every hyper-parameter of algorithm ``name`` (or of an entry of another ``registry``
    with ``Params``, e.g. the imbalance methods): default (with USB's per-domain ones),
    allowed values and help, as ``semibench list --params`` prints them."""
    alg = (registry or ALGORITHMS).get(name)
    rows = []
    for f in dataclasses.fields(alg.Params):
        per_domain = [f"{d}: {json.dumps(v[f.name])}"
                      for d, v in getattr(alg, "param_defaults", {}).items() if f.name in v]
        allowed = f.metadata.get("allowed") or ""
        if f.metadata.get("choices"):
            allowed = "{" + ", ".join(f.metadata["choices"]) + "}"
        elif isinstance(f.default, bool):
            allowed = "true | false"
        rows.append({"name": f.name,
                     "default": json.dumps(f.default) + (f" ({'; '.join(per_domain)})"
                                                         if per_domain else ""),
                     "allowed": allowed, "help": f.metadata.get("help", "")})
    return rows


def base_view(name: str) -> str:
    """"strong2" -> "strong": numbered views are further independent draws of a view."""
    return name.rstrip("0123456789")


def make_params(name: str, values: dict[str, Any] | None, domain: str | None = None) -> Any:
    """Build an algorithm's typed parameters from its per-domain defaults and ``values``,
    checked by ``check_params``; unknown keys name the algorithm and the key."""
    alg = ALGORITHMS.get(name)
    cls = alg.Params
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values or {}) - known)
    if unknown:
        raise ValueError(
            f"algorithm_params.{name}: unknown parameter(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(known)) or 'none'}"
        )
    merged = {**alg.param_defaults.get("all", {}), **alg.param_defaults.get(domain or "", {}),
              **(values or {})}
    params = cls(**merged)
    check_params(name, params)
    return params


def create_algorithm(
    name: str, params: dict[str, Any] | None = None, domain: str | None = None, **kwargs: Any
) -> Algorithm:
    """A registered algorithm on its own. A run's algorithm, which may compose an imbalance
    method, is built by :func:`semibench.compose.create_algorithm`."""
    cls = ALGORITHMS.get(name)
    return cls(make_params(name, params, domain), **kwargs)

