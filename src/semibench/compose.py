"""The composition root: the one place that turns a run's composition (a base algorithm and,
optionally, an imbalance method) with its parameters into typed parameters and an
:class:`~semibench.algorithms.base.Algorithm`.

It sits above :mod:`semibench.algorithms` and :mod:`semibench.imbalance`, which never import
it (nor each other upwards). The trainer, the planner, inference and the config call it.

A composition is data, :class:`~semibench.spec.Composition` (``algorithm``, ``imbalance``).
USB's shorthand ``<base>_<method>`` (``fixmatch_abc``) is accepted in configs and parsed once,
by :func:`parse_label`, when the config is resolved; the label is formed back only by
:func:`semibench.spec.run_label` (run directories, tables, USB's published rows).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from semibench.algorithms.base import ALGORITHMS, Algorithm, check_params
from semibench.algorithms.base import make_params as make_algorithm_params
from semibench.imbalance.base import IMBALANCE, Composed, ComposedParams, ImbalanceMethod
from semibench.spec import Composition, run_label

__all__ = [
    "Composition",
    "algorithm_origins",
    "check_composition",
    "create_algorithm",
    "generations",
    "is_label",
    "make_method_params",
    "make_params",
    "parse_label",
    "run_label",
    "settings_composition",
]


def _split(name: str) -> Composition | None:
    """``"fixmatch_abc"`` -> Composition("fixmatch", "abc"); a registered algorithm's own name
    always wins; None for a name that is neither."""
    if name in ALGORITHMS:
        return Composition(name)
    for i, ch in enumerate(name):
        if ch == "_" and name[:i] in ALGORITHMS and name[i + 1:] in IMBALANCE:
            return Composition(name[:i], name[i + 1:])
    return None


def is_label(name: str) -> bool:
    """Whether ``name`` is a registered algorithm or ``<algorithm>_<imbalance method>``."""
    return _split(name) is not None


def parse_label(name: str) -> Composition:
    """USB's shorthand, parsed once at config time: a registered algorithm or a composition
    that can run (e.g. Adsh only with FixMatch). One-line ``ValueError`` otherwise."""
    composition = _split(name)
    if composition is None:
        raise ValueError(f"unknown algorithm {name!r}; allowed: {', '.join(ALGORITHMS.names())}"
                         f", or <algorithm>_<imbalance method> with a method among "
                         f"{', '.join(IMBALANCE.names())}")
    check_composition(composition)
    return composition


def check_composition(composition: Composition) -> None:
    """One-line ``ValueError`` for a composition that cannot run (before anything runs)."""
    base_name, method_name = composition.algorithm, composition.imbalance
    base = ALGORITHMS.get(base_name)
    if method_name is None:
        return
    method = IMBALANCE.get(method_name)
    name = composition.label
    if method.bases is not None and base_name not in method.bases:
        raise ValueError(f"{name}: {method_name} composes only with "
                         f"{', '.join(sorted(method.bases))}, not {base_name}")
    views = {f"lb_{v}" for v in base.lb_views} | {f"ulb_{v}" for v in base.ulb_views}
    missing = sorted(method.needs_views - views)
    if missing:
        raise ValueError(f"{name}: {method_name} needs the base's {', '.join(missing)} "
                         f"outputs, which {base_name} does not compute")


def make_method_params(name: str, values: Mapping[str, Any] | None) -> Any:
    """An imbalance method's typed parameters; errors name ``imbalance_params.<name>.<key>``."""
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


def make_params(composition: Composition, values: Mapping[str, Any] | None,
                imbalance_values: Mapping[str, Any] | None = None,
                domain: str | None = None) -> tuple[Any, Any]:
    """The base's typed parameters (with its per-domain defaults) and the method's (None
    without an imbalance method), both checked."""
    check_composition(composition)
    params = make_algorithm_params(composition.algorithm, dict(values or {}), domain)
    if composition.imbalance is None:
        if imbalance_values:
            raise ValueError(f"imbalance_params given to {composition.label}, which has no "
                             "imbalance method")
        return params, None
    return params, make_method_params(composition.imbalance, imbalance_values)


def generations(composition: Composition, method_params: Any) -> tuple[int, str | None]:
    """How many generations the run trains (CReST's) and the key that sets it (or None)."""
    if composition.imbalance is None:
        return 1, None
    method: type[ImbalanceMethod] = IMBALANCE.get(composition.imbalance)
    if method.generations_param is None:
        return 1, None
    return (int(getattr(method_params, method.generations_param)),
            f"imbalance_params.{composition.imbalance}.{method.generations_param}")


def create_algorithm(composition: Composition, params: Mapping[str, Any] | None = None,
                     imbalance_params: Mapping[str, Any] | None = None,
                     domain: str | None = None, *, num_classes: int, num_iterations: int,
                     num_ulb: int) -> Algorithm:
    """The only constructor of a run's algorithm: the base alone, or the base and its
    imbalance method presented as one :class:`Algorithm`."""
    typed, method_typed = make_params(composition, params, imbalance_params, domain)
    sizes = dict(num_classes=num_classes, num_iterations=num_iterations, num_ulb=num_ulb)
    base = ALGORITHMS.get(composition.algorithm)
    if composition.imbalance is None:
        return base(typed, **sizes)
    return Composed(ComposedParams(base=typed, imbalance=method_typed), base=base,
                    method=IMBALANCE.get(composition.imbalance), name=composition.label,
                    **sizes)


def settings_composition(settings: Mapping[str, Any]) -> tuple[Composition, dict[str, Any],
                                                                 dict[str, Any] | None]:
    """A run's composition and its two parameter sections, from its resolved settings.

    Settings written before compositions were fields (no ``imbalance`` key, the shorthand in
    ``algorithm`` and ``algorithm_params`` as ``{"base": ..., "imbalance": ...}``) are read as
    their config was: the shorthand is parsed here, once."""
    name = settings["algorithm"]
    params = dict(settings.get("algorithm_params") or {})
    if "imbalance" in settings or name in ALGORITHMS:
        imbalance = settings.get("imbalance")
        return (Composition(name, imbalance), params,
                dict(settings.get("imbalance_params") or {}) if imbalance else None)
    composition = _split(name)  # an older run of <base>_<method>, or of an algorithm that
    if composition is None or composition.imbalance is None:  # is not registered (yet)
        return Composition(name), params, None
    return composition, dict(params.get("base") or {}), dict(params.get("imbalance") or {})


def algorithm_origins(composition: Composition) -> list[str]:
    """Where a composition's code comes from (a plugin's edit reruns its jobs)."""
    origins = [ALGORITHMS.origin(composition.algorithm)]
    if composition.imbalance is not None:
        origins.append(IMBALANCE.origin(composition.imbalance))
    return origins
