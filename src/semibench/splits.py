"""Labelled / unlabelled / validation splits of a task's training pool, one file per seed.

Per class, the pool is shuffled once with ``numpy.random.default_rng(seed)``; the first
``val_per_class`` samples are the validation set and the next ``num_labels / C`` the labelled
set. So, for a fixed seed, validation does not depend on the label budget and a smaller
labelled set is a subset of a larger one. As in USB (``include_lb_to_ulb``), the unlabelled set
is the whole pool minus validation, labelled samples included. The test set is the source's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from semibench.io import atomic_write_text, read_json


class SplitError(ValueError):
    """A label budget that cannot be drawn from the pool."""


@dataclass(frozen=True)
class Split:
    task: str
    num_labels: int
    seed: int
    labelled: list[int]
    unlabelled: list[int]
    validation: list[int]
    include_labelled_in_unlabelled: bool

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True) + "\n"


def make_split(
    labels: np.ndarray,
    *,
    task: str,
    num_classes: int,
    num_labels: int,
    val_per_class: int,
    seed: int,
    include_labelled_in_unlabelled: bool = True,
) -> Split:
    if num_labels <= 0 or num_labels % num_classes:
        raise SplitError(
            f"{task}: num_labels={num_labels} must be a positive multiple of its "
            f"{num_classes} classes (USB samples the same number of labels per class)"
        )
    per_class = num_labels // num_classes
    rng = np.random.default_rng(seed)
    labelled, validation, rest = [], [], []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        need = val_per_class + per_class
        if len(idx) < need + 1:
            raise SplitError(
                f"{task}: class {c} has {len(idx)} training samples; {val_per_class} validation "
                f"+ {per_class} labelled leave none unlabelled (num_labels={num_labels})"
            )
        idx = rng.permutation(idx)
        validation.append(idx[:val_per_class])
        labelled.append(idx[val_per_class:need])
        rest.append(idx[need:])
    lb = np.sort(np.concatenate(labelled))
    ulb = np.concatenate(rest + (labelled if include_labelled_in_unlabelled else []))
    return Split(
        task=task,
        num_labels=num_labels,
        seed=seed,
        labelled=lb.tolist(),
        unlabelled=np.sort(ulb).tolist(),
        validation=np.sort(np.concatenate(validation)).tolist(),
        include_labelled_in_unlabelled=include_labelled_in_unlabelled,
    )


def write_split(split: Split, path: str | Path) -> None:
    atomic_write_text(path, split.to_json())


def read_split(path: str | Path) -> Split:
    return Split(**read_json(path))
