"""A run as a typed value: what it composes (:class:`Composition`) and every setting it was
resolved with (:class:`RunSpec`). Light on purpose (no torch): the workflow and the report may
import it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from semibench.sweep import point_label
from semibench.train.config import TrainConfig


def run_label(algorithm: str, imbalance: str | None = None,
              point: Mapping[str, Any] | None = None) -> str:
    """The one place that forms a run's label: a composition's is USB's ``<base>_<method>``
    (``fixmatch_abc``), and a swept run's adds its point (``fixmatch,p_cutoff=0.9``,
    :mod:`semibench.sweep`). Run directories, tables and USB's published rows use it. Nothing
    parses it back (configs' shorthand is parsed once, by :func:`semibench.compose.parse_label`)."""
    label = algorithm if imbalance is None else f"{algorithm}_{imbalance}"
    return point_label(label, point) if point else label


@dataclass(frozen=True)
class Composition:
    """What a run trains: a registered algorithm and, optionally, an imbalance method."""

    algorithm: str
    imbalance: str | None = None

    @property
    def label(self) -> str:
        return run_label(self.algorithm, self.imbalance)


#: the optional keys of a run's settings: present only where they apply, so that adding one
#: never changes the settings (and so the Snakemake params) of the runs that do not use it
_OPTIONAL = ("imbalance", "imbalance_params", "long_tailed", "split_tag", "base_task", "plugins",
             "sweep")
_REQUIRED = ("task", "num_labels", "algorithm", "seed", "backbone", "train")
_KNOWN = frozenset(_REQUIRED + _OPTIONAL + ("backbone_args", "augment", "algorithm_params"))


def _frozen(value: Any) -> Any:
    """A read-only copy of a JSON value (mappings become ``MappingProxyType``)."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _frozen(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    """The JSON value of a :func:`_frozen` one."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class RunSpec:
    """One training run, resolved once from the config (:func:`semibench.config.run_config`)
    and read, never changed, by everything that trains it.

    On the wire (the Snakemake rule's ``--run-config``, ``metrics.json``'s ``config``, a
    checkpoint's inputs) it is the plain dict of :meth:`to_settings`; :meth:`from_settings`
    parses that dict once, at the entry point."""

    task: str
    num_labels: int
    seed: int
    composition: Composition
    backbone: str
    train: TrainConfig
    backbone_args: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    augment: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: the base algorithm's parameters (plain JSON values; typed by semibench.compose)
    algorithm_params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: the imbalance method's parameters (None without one)
    imbalance_params: Mapping[str, Any] | None = None
    #: a long-tailed split's setting (semibench.splits_lt) and the tag of its split files
    long_tailed: Mapping[str, Any] | None = None
    split_tag: str | None = None
    #: a variant's registered task (None: ``task`` itself is registered)
    base_task: str | None = None
    #: the plugins the run's code comes from, with their fingerprints
    plugins: Mapping[str, Any] | None = None
    #: a swept run's point: its value on each sweep axis (semibench.sweep), None otherwise
    sweep: Mapping[str, Any] | None = None

    @property
    def algorithm(self) -> str:
        return self.composition.algorithm

    @property
    def imbalance(self) -> str | None:
        return self.composition.imbalance

    @property
    def label(self) -> str:
        """``<base>_<method>`` or the algorithm, with a swept run's point: the run's directory
        and table name."""
        return run_label(self.algorithm, self.imbalance, self.sweep)

    @property
    def registered_task(self) -> str:
        """The registered task whose data and defaults the run uses."""
        return self.base_task or self.task

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RunSpec:
        """Parse a run's resolved settings (the wire format); one-line ``ValueError`` for an
        unknown or missing key."""
        unknown = sorted(set(settings) - _KNOWN)
        if unknown:
            raise ValueError(f"run settings: unknown key(s) {', '.join(unknown)}; allowed: "
                             f"{', '.join(sorted(_KNOWN))}")
        missing = [k for k in _REQUIRED if k not in settings]
        if missing:
            raise ValueError(f"run settings: missing key(s) {', '.join(missing)}")
        optional = {k: _frozen(settings[k]) for k in _OPTIONAL
                    if k not in ("imbalance",) and settings.get(k) is not None}
        return cls(task=str(settings["task"]), num_labels=int(settings["num_labels"]),
                   seed=int(settings["seed"]),
                   composition=Composition(str(settings["algorithm"]),
                                           settings.get("imbalance") or None),
                   backbone=str(settings["backbone"]),
                   train=TrainConfig.from_dict(dict(settings["train"])),
                   backbone_args=_frozen(settings.get("backbone_args") or {}),
                   augment=_frozen(settings.get("augment") or {}),
                   algorithm_params=_frozen(settings.get("algorithm_params") or {}),
                   **optional)

    @classmethod
    def coerce(cls, run: RunSpec | Mapping[str, Any]) -> RunSpec:
        return run if isinstance(run, RunSpec) else cls.from_settings(run)

    def to_settings(self) -> dict[str, Any]:
        """The wire format: plain JSON, the optional keys only where they apply."""
        settings: dict[str, Any] = {
            "task": self.task, "num_labels": self.num_labels, "algorithm": self.algorithm,
            "seed": self.seed, "backbone": self.backbone,
            "backbone_args": _plain(self.backbone_args), "augment": _plain(self.augment),
            "train": self.train.to_settings(), "algorithm_params": _plain(self.algorithm_params)}
        optional = {"imbalance": self.imbalance, "imbalance_params": self.imbalance_params,
                    "long_tailed": self.long_tailed, "split_tag": self.split_tag,
                    "base_task": self.base_task, "plugins": self.plugins, "sweep": self.sweep}
        settings.update({k: _plain(v) for k, v in optional.items() if v is not None})
        return settings
