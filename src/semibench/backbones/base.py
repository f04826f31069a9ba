"""The backbone interface (timm-style) and its registry.

A backbone maps model inputs to pooled features (``forward_features``) and features to logits
(``forward_head``); it names its no-weight-decay parameters and its layer groups (for layer-wise
learning-rate decay) so the optimiser is built in one place for every architecture.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from semibench.registry import Registry, UnknownNameError
from semibench.weights import MissingWeightsError, Weights, missing_entries, missing_message

BACKBONES: Registry[Any] = Registry("backbone")
B = TypeVar("B")


class Backbone(nn.Module):
    num_features: int
    #: convolutions run faster channels-last (oneDNN on the CPU, tensor cores on CUDA); the
    #: trainer's ``memory_format: auto`` follows this
    channels_last: bool = False

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, feats: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return feats if pre_logits else self.head(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def compile_obstacle(self) -> str | None:
        """Why ``torch.compile`` must not wrap this model (None: it may). The trainer then
        trains eagerly and records the reason in metrics.json."""
        return None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The continuous input that adversarial perturbations (VAT) act on: the input itself,
        or the token embeddings for text."""
        return x

    def forward_embedded(self, e: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Pooled features from ``embed(x)`` (possibly perturbed); ``x`` gives e.g. the mask."""
        return self.forward_features(e)

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.num_features, num_classes)

    def no_weight_decay(self) -> set[str]:
        """Names of parameters that get no weight decay besides 1-D ones (norms, biases)."""
        return set()

    def group_matcher(self) -> dict[str, Any]:
        """timm-style regexes mapping parameter names to layer groups (stem first)."""
        return {"stem": r"^$", "blocks": [(r".*", None)]}

    def prepare_inputs(self, raw: Any) -> torch.Tensor:
        """Turn stored samples (a numpy array from the prepared data) into stored tensors."""
        return torch.as_tensor(raw)

    def view_spec(self) -> dict[str, Any]:
        """Extra keys the domain's views need from the backbone (e.g. special token ids)."""
        return {}


def create_backbone(name: str, num_classes: int, **kwargs: Any) -> Backbone:
    """The only constructor of backbones; ``None`` kwargs mean "use the default". Missing
    pretrained weights fail here with the config check's line (:func:`required_weights`),
    before anything is built."""
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    missing = missing_entries((w, []) for w in required_weights(name, kwargs))
    if missing:
        raise MissingWeightsError(missing_message(missing))
    return BACKBONES.get(name)(num_classes=num_classes, **kwargs)


def declare_weights(declare: Callable[[str, dict[str, Any]], list[Weights]]
                    ) -> Callable[[B], B]:
    """Declare the pretrained files a backbone builder reads: ``declare(name, backbone_args)``
    returns them as :class:`semibench.weights.Weights` (none for random weights). The config
    check, ``semibench plan``, the workflow and :func:`create_backbone` look for them on the
    file system only, so a missing file is one line before any job runs. A builder that
    declares nothing is taken to need no file."""

    def decorator(builder: B) -> B:
        builder.weights_needed = declare  # type: ignore[attr-defined]
        return builder

    return decorator


def required_weights(name: str, args: dict[str, Any]) -> list[Weights]:
    """The files backbone ``name`` reads with ``args`` (its ``backbone_args``), as its builder
    declares them (:func:`declare_weights`)."""
    builder = BACKBONES.get(name)
    if isinstance(builder, functools.partial):  # a family's factory, bound to the rest
        builder = builder.func
    declare = getattr(builder, "weights_needed", None)
    if declare is None:
        return []
    return list(declare(name, {k: v for k, v in args.items() if v is not None}))


def planner_family(family: str | Callable[[str], str]) -> Callable[[B], B]:
    """Declare the calibration family of a backbone builder (a function or a class): the
    planner (``semibench plan``) and ``benchmarks/speed.py`` group calibration rows by it, so a
    backbone without its own measured row takes its family's. ``family`` is a name (vit, wrn,
    bert, speech, cnn, ...) or, for a builder that answers a family of names (``timm/<model>``),
    a function of the part after the ``/``. Plugin backbones declare theirs the same way (or set
    ``planner_family`` on the builder)."""

    def decorator(builder: B) -> B:
        builder.planner_family = family  # type: ignore[attr-defined]
        return builder

    return decorator


def backbone_family(name: str) -> str:
    """The calibration family that backbone ``name``'s builder declares
    (:func:`planner_family`); the name itself for a builder that declares none or an unknown
    name."""
    try:
        builder = BACKBONES.get(name)
    except UnknownNameError:
        return name
    rest = None
    if isinstance(builder, functools.partial):  # a family's factory, bound to the rest
        builder, rest = builder.func, builder.args[0]
    declared = getattr(builder, "planner_family", None)
    if declared is None:
        return name
    if callable(declared):
        return str(declared(rest)) if rest is not None else name
    return str(declared)
