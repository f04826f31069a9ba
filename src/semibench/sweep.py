"""Hyper-parameter sweeps: a list of values in ``algorithm_params`` or ``train`` is a grid axis.

``algorithm_params: {fixmatch: {p_cutoff: [0.9, 0.95]}}`` trains FixMatch twice, once per value,
each run in its own directory and report row. Lists are allowed where a scalar is (top level or
per task, ``train`` and ``algorithm_train`` too); the usual precedence decides which list (or
scalar) a run sees, and every list it sees is one axis of its grid (their product).

A run's *point* is its value on each axis, written into its label after the algorithm's:
``fixmatch,p_cutoff=0.9`` (a ``train`` key reads ``train.lr=0.01``). The label is only formed,
never parsed back: the config resolves which point a label names by forming every point's label
(:func:`points`). Runs without a list keep their label and settings unchanged.

Light on purpose (no torch): the workflow and the report import it.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import re
from collections.abc import Iterator, Mapping
from typing import Any

#: the prefix of a ``train`` key in a point's label (an algorithm may have a parameter of the
#: same name as a trainer setting)
TRAIN = "train."
#: what a value may look like in a label (a directory name, a Snakemake wildcard)
_VALUE = re.compile(r"[A-Za-z0-9_.+-]+")
#: trainer settings that are not a sweep axis, and why: they change what a run keeps on
#: disk, not its result (runs differing only there would be the same run twice)
NOT_SWEPT = {"keep_weights": "it decides which weight files a run keeps, not its result"}
#: a run label with a point: Snakemake's wildcard constraint of ``algorithm``
LABEL_PATTERN = r"[a-z0-9_]+(,[a-z0-9_.]+=[A-Za-z0-9_.+-]+)*"


class SweepError(ValueError):
    """A malformed list of values; the message is one line naming the key."""


def format_value(value: Any) -> str:
    """A value as its label writes it: ``0.9``, ``1e-05``, ``200``, ``true``, ``adamw``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def point_label(label: str, point: Mapping[str, Any]) -> str:
    """``fixmatch`` and {p_cutoff: 0.9} -> ``fixmatch,p_cutoff=0.9`` (no point: the label)."""
    return ",".join([label, *(f"{k}={format_value(v)}" for k, v in point.items())])


def unswept(label: str) -> str:
    """The algorithm part of a run label (what a point's label starts with)."""
    return label.split(",", 1)[0]


def check_values(where: str, values: list[Any]) -> None:
    """A list is an axis: at least one value, scalars only, each written differently."""
    if not values:
        raise SweepError(f"{where}=[]: a list of values is a sweep axis and needs one or more")
    written: dict[str, Any] = {}
    for i, v in enumerate(values):
        if v is None or isinstance(v, dict | list):
            raise SweepError(f"{where}[{i}]={v!r}: a sweep axis takes numbers, strings or "
                             f"booleans")
        text = format_value(v)
        if not _VALUE.fullmatch(text):
            raise SweepError(f"{where}[{i}]={v!r}: a swept value is written into run "
                             f"directories; use letters, digits and _ . + - only")
        if text in written:
            raise SweepError(f"{where}: {written[text]!r} and {v!r} are the same point "
                             f"({text}); give each value once")
        written[text] = v


def swept_sections(config: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(config key, section) of every mapping whose values may be lists."""
    yield "train", config.get("train", {})
    for alg, values in config.get("algorithm_params", {}).items():
        yield f"algorithm_params.{alg}", values
    for alg, values in config.get("algorithm_train", {}).items():
        yield f"algorithm_train.{alg}", values
    for task, settings in config.get("tasks", {}).items():
        if not isinstance(settings, dict):
            continue
        yield f"tasks.{task}.train", settings.get("train", {})
        for alg, values in settings.get("algorithm_params", {}).items():
            yield f"tasks.{task}.algorithm_params.{alg}", values
        for alg, values in settings.get("algorithm_train", {}).items():
            yield f"tasks.{task}.algorithm_train.{alg}", values


def axes(config: Mapping[str, Any]) -> dict[tuple[str, str], list[Any]]:
    """Every list in the config: (section key, name) -> values, each list checked."""
    found = {}
    for where, section in swept_sections(config):
        if not isinstance(section, dict):
            continue
        for name, value in section.items():
            if isinstance(value, list):
                trainer = "algorithm_params" not in where  # train or algorithm_train
                if trainer and name in NOT_SWEPT:
                    raise SweepError(f"{where}.{name}={value!r}: not a sweep axis "
                                     f"({NOT_SWEPT[name]}); give one value")
                check_values(f"{where}.{name}", value)
                found[(where, name)] = value
    return found


def section_at(config: dict[str, Any], where: str) -> dict[str, Any]:
    parts = where.split(".")
    section = config
    for part in parts:
        section = section[part]
    return section


def copies(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Copies of ``config`` with every list replaced by one of its values: the first values
    first, then each other value of each list once (the others at their first). Checking each
    copy checks every value."""
    found = axes(config)

    def at(choice: Mapping[tuple[str, str], Any]) -> dict[str, Any]:
        out = copy.deepcopy(config)
        for (where, name), values in found.items():
            section_at(out, where)[name] = choice.get((where, name), values[0])
        return out

    yield at({})
    for key, values in found.items():
        for value in values[1:]:
            yield at({key: value})


def points(train: Mapping[str, Any], params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The points of a run's resolved ``train`` and algorithm ``params`` (where a list is an
    axis): one empty point when nothing is swept. Keys in label order: the algorithm's, then
    the trainer's (``train.`` prefixed)."""
    grid = [(name, values) for name, values in params.items() if isinstance(values, list)]
    grid += [(TRAIN + name, values) for name, values in train.items()
             if isinstance(values, list)]
    return [dict(zip([k for k, _ in grid], combo, strict=True))
            for combo in itertools.product(*(values for _, values in grid))]


def apply(point: Mapping[str, Any], train: dict[str, Any],
          params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``train`` and ``params`` at ``point`` (new dicts)."""
    train, params = dict(train), dict(params)
    for key, value in point.items():
        if key.startswith(TRAIN):
            train[key[len(TRAIN):]] = value
        else:
            params[key] = value
    return train, params


@contextlib.contextmanager
def first_values(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``config`` itself with each list at its first value while the block runs (a schema
    validator that fills defaults in place, such as Snakemake's ``validate``), then the lists
    back."""
    found = axes(config)
    for (where, name), values in found.items():
        section_at(config, where)[name] = values[0]
    try:
        yield config
    finally:
        for (where, name), values in found.items():
            section_at(config, where)[name] = values
