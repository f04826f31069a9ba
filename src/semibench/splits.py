"""Labelled / unlabelled / validation splits of a task's training pool, one file per seed.

Per class, the pool is shuffled once with ``numpy.random.default_rng(seed)``; the first
``val_per_class`` samples are the validation set and the next ``num_labels / C`` the labelled
set. So, for a fixed seed, validation does not depend on the label budget and a smaller
labelled set is a subset of a larger one. As in USB (``include_lb_to_ulb``), the unlabelled set
is the whole pool minus validation, labelled samples included. The test set is the source's.

Two source-given variants: ``validation_source="prepared"`` uses the source's development
split (``val_x``/``val_y`` in the prepared data) and draws no validation from the pool; a
``fixed_labelled`` task (Semi-Aves, FSDnoisy18k) uses every labelled sample as the labelled set
for every seed. Samples labelled -1 (no label) only ever join the unlabelled set.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semibench.errors import SemiBenchError
from semibench.io import atomic_write_text, read_json


class SplitError(SemiBenchError, ValueError):
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
    #: "pool": ``validation`` indexes the training pool; "prepared": the source's dev split
    validation_source: str = "pool"
    #: a long-tailed split (semibench.splits_lt): its setting and per-class counts; absent
    #: from a balanced split's file, which stays byte-identical to before
    long_tailed: dict[str, Any] | None = None
    lb_class_counts: list[int] | None = None
    ulb_class_counts: list[int] | None = None

    def to_json(self) -> str:
        fields = {k: v for k, v in asdict(self).items()
                  if v is not None or k not in _OPTIONAL}
        return json.dumps(fields, sort_keys=True) + "\n"


_OPTIONAL = ("long_tailed", "lb_class_counts", "ulb_class_counts")


def make_split(
    labels: np.ndarray,
    *,
    task: str,
    num_classes: int,
    num_labels: int,
    val_per_class: int,
    seed: int,
    include_labelled_in_unlabelled: bool = True,
    validation_source: str = "pool",
    fixed_labelled: bool = False,
) -> Split:
    if validation_source not in ("pool", "prepared"):
        raise ValueError(f"validation_source={validation_source!r}; allowed: pool, prepared")
    if validation_source == "prepared":
        val_per_class = 0
    if fixed_labelled:
        return _fixed_split(labels, task=task, num_labels=num_labels, seed=seed,
                            validation_source=validation_source)
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
    no_label = [np.flatnonzero(labels < 0)]
    ulb = np.concatenate(rest + no_label + (labelled if include_labelled_in_unlabelled else []))
    return Split(
        task=task,
        num_labels=num_labels,
        seed=seed,
        labelled=lb.tolist(),
        unlabelled=np.sort(ulb).tolist(),
        validation=np.sort(np.concatenate(validation)).tolist(),
        include_labelled_in_unlabelled=include_labelled_in_unlabelled,
        validation_source=validation_source,
    )


def _fixed_split(labels: np.ndarray, *, task: str, num_labels: int, seed: int,
                 validation_source: str) -> Split:
    """Every labelled sample is labelled; unlabelled = the samples without a label."""
    lb = np.flatnonzero(labels >= 0)
    if num_labels != len(lb):
        raise SplitError(f"{task}: its labelled set is fixed at {len(lb)} samples; "
                         f"num_labels={num_labels} must equal it")
    if validation_source != "prepared":
        raise SplitError(f"{task}: a fixed labelled set needs the source's validation split")
    return Split(task=task, num_labels=num_labels, seed=seed, labelled=lb.tolist(),
                 unlabelled=np.flatnonzero(labels < 0).tolist(), validation=[],
                 include_labelled_in_unlabelled=False, validation_source=validation_source)


def write_split(split: Split, path: str | Path) -> None:
    atomic_write_text(path, split.to_json())


def read_split(path: str | Path) -> Split:
    return Split(**read_json(path))
