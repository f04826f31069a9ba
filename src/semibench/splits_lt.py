"""Long-tailed splits (USB's ``classic_cv_imb``): a split rule over the same prepared data.

Class c (0-based, head first) gets ``N_c = int(N1 * mu**c)`` labelled samples with
``mu = (1/gamma_l) ** (1/(C-1))``, and the last class gets ``int(N1 / gamma_l)``; the same rule
with M1 and gamma_u gives the unlabelled counts. ``int`` truncates, exactly as USB's
``make_imbalance_data`` does, so CIFAR-10-LT with N1 = 1500, gamma = 100 has the literature's
1500, 899, 539, 323, 193, 116, 69, 41, 25, 15. A reversed unlabelled distribution (USB writes
``ulb_imb_ratio: -100``) is ``ulb_reversed: true``: the unlabelled counts in reverse class order.

Why a rule of the split step and not a new dataset: the prepared data stays one copy, the test
set stays the source's balanced one, and validation stays ``val_per_class`` per class (balanced,
so model selection matches the balanced test set; USB has no validation split at all).

Per class the pool is shuffled once with ``default_rng(seed)``: validation first, then the N_c
labelled, then the M_c unlabelled (or every remaining sample when M1 is not given, as USB does
for STL-10, whose unlabelled extra set also joins). As in USB's imbalanced configs
(``include_lb_to_ulb: False``), labelled samples are not in the unlabelled set by default.
The split file records the setting and both per-class counts.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from semibench.splits import Split, SplitError

#: the keys of a task's ``long_tailed`` config section
KEYS = ("lb_gamma", "ulb_gamma", "ulb_head", "ulb_reversed", "include_labelled_in_unlabelled")


@dataclass(frozen=True)
class LongTailed:
    """One long-tailed setting; N1 is the run's ``num_labels``."""

    lb_gamma: float
    ulb_gamma: float
    #: M1, the unlabelled head count; None: every remaining sample is unlabelled
    ulb_head: int | None = None
    ulb_reversed: bool = False
    include_labelled_in_unlabelled: bool = False

    def tag(self, num_labels: int) -> str:
        """A directory name that tells settings apart: ``lt_l100_u100_m3000`` (``r`` marks a
        reversed unlabelled distribution, ``all`` no M1, ``p`` a decimal point)."""
        def num(v: float) -> str:
            return f"{v:g}".replace(".", "p")
        m = "all" if self.ulb_head is None else str(self.ulb_head)
        rev = "r" if self.ulb_reversed else ""
        inc = "_inc" if self.include_labelled_in_unlabelled else ""
        return f"lt_l{num(self.lb_gamma)}_u{rev}{num(self.ulb_gamma)}_m{m}{inc}"


_TAG = re.compile(r"lt_l([0-9p]+)_u(r?)([0-9p]+)_m(all|[0-9]+)(_inc)?")


def parse_tag(tag: str) -> LongTailed:
    """The inverse of :meth:`LongTailed.tag` (the split rule passes the tag on)."""
    match = _TAG.fullmatch(tag)
    if match is None:
        raise SplitError(f"long-tailed split tag {tag!r}: expected e.g. lt_l100_u100_m3000")
    lb, rev, ulb, m, inc = match.groups()
    return LongTailed(lb_gamma=float(lb.replace("p", ".")), ulb_gamma=float(ulb.replace("p", ".")),
                      ulb_head=None if m == "all" else int(m), ulb_reversed=bool(rev),
                      include_labelled_in_unlabelled=bool(inc))


def _ulb_head(value: Any, num_labels: int, where: str) -> int | None:
    """``ulb_head`` is one M1 for every N1, or a mapping N1 -> M1 (USB pairs 1500 with 3000
    and 500 with 4000)."""
    if isinstance(value, dict):
        if str(num_labels) not in value:
            raise SplitError(f"{where}.ulb_head: no entry for num_labels {num_labels} "
                             f"(has {', '.join(sorted(value, key=str))})")
        value = value[str(num_labels)]
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SplitError(f"{where}.ulb_head={value!r}: must be a positive integer")
    return value


def long_tailed_setting(section: dict[str, Any], num_labels: int,
                        where: str = "long_tailed") -> LongTailed:
    """A task's ``long_tailed`` section for one N1, checked; errors are one line naming the
    key (gamma < 1 is no long tail: reverse with ``ulb_reversed``, not a negative gamma)."""
    unknown = sorted(set(section) - set(KEYS))
    if unknown:
        raise SplitError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: "
                         f"{', '.join(sorted(KEYS))}")
    if "lb_gamma" not in section:
        raise SplitError(f"{where}: lb_gamma (the labelled imbalance ratio) is required")
    values: dict[str, Any] = {}
    for key in ("lb_gamma", "ulb_gamma"):
        value = section.get(key, section["lb_gamma"])
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
            raise SplitError(f"{where}.{key}={value!r}: must be a number >= 1 (head / tail "
                             "count; a reversed unlabelled distribution is ulb_reversed: true)")
        values[key] = float(value)
    for key in ("ulb_reversed", "include_labelled_in_unlabelled"):
        if not isinstance(section.get(key, False), bool):
            raise SplitError(f"{where}.{key}={section[key]!r}: must be true or false")
        values[key] = section.get(key, False)
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
        raise SplitError(f"{where}: num_labels={num_labels!r} (N1) must be a positive integer")
    values["ulb_head"] = _ulb_head(section.get("ulb_head"), num_labels, where)
    shaped = section.get("ulb_gamma", 1) != 1 or values["ulb_reversed"]
    if shaped and values["ulb_head"] is None:  # USB asserts the same (ulb_num_labels)
        raise SplitError(f"{where}: a long-tailed or reversed unlabelled set needs ulb_head "
                         "(M1); without it every remaining sample is unlabelled")
    return LongTailed(**values)


def long_tailed_counts(head: int, num_classes: int, gamma: float,
                       reversed_: bool = False) -> list[int]:
    """Per-class counts ``int(head * mu**c)``, the last ``int(head / gamma)`` (USB's rule)."""
    if num_classes < 2:
        raise SplitError("a long tail needs at least 2 classes")
    if gamma < 1:
        raise SplitError(f"gamma={gamma!r}: must be >= 1")
    mu = (1.0 / gamma) ** (1.0 / (num_classes - 1))
    counts = [int(head * mu**c) for c in range(num_classes - 1)] + [int(head / gamma)]
    return counts[::-1] if reversed_ else counts


def make_long_tailed_split(
    labels: np.ndarray,
    *,
    task: str,
    num_classes: int,
    num_labels: int,
    setting: LongTailed,
    val_per_class: int,
    seed: int,
    validation_source: str = "pool",
) -> Split:
    """The split of the module docstring; ``num_labels`` is N1."""
    if validation_source not in ("pool", "prepared"):
        raise ValueError(f"validation_source={validation_source!r}; allowed: pool, prepared")
    if validation_source == "prepared":
        val_per_class = 0
    lb_counts = long_tailed_counts(num_labels, num_classes, setting.lb_gamma)
    ulb_counts = (None if setting.ulb_head is None else
                  long_tailed_counts(setting.ulb_head, num_classes, setting.ulb_gamma,
                                     setting.ulb_reversed))
    if min(lb_counts) < 1:
        raise SplitError(f"{task}: N1={num_labels} with gamma_l={setting.lb_gamma:g} leaves "
                         f"class {lb_counts.index(min(lb_counts))} without a label")
    rng = np.random.default_rng(seed)
    labelled, validation, unlabelled = [], [], []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        m = len(idx) - val_per_class - lb_counts[c] if ulb_counts is None else ulb_counts[c]
        need = val_per_class + lb_counts[c] + m
        if len(idx) < need or m < 0:
            raise SplitError(
                f"{task}: class {c} has {len(idx)} training samples; {val_per_class} validation "
                f"+ {lb_counts[c]} labelled + {max(m, 0)} unlabelled do not fit")
        idx = rng.permutation(idx)
        validation.append(idx[:val_per_class])
        labelled.append(idx[val_per_class:val_per_class + lb_counts[c]])
        unlabelled.append(idx[val_per_class + lb_counts[c]:need])
    if ulb_counts is None:  # every remaining sample, and the source's unlabelled ones
        unlabelled.append(np.flatnonzero(labels < 0))
    if setting.include_labelled_in_unlabelled:
        unlabelled += labelled
    ulb = np.sort(np.concatenate(unlabelled))
    ulb_per_class = np.bincount(labels[ulb][labels[ulb] >= 0], minlength=num_classes)
    return Split(
        task=task,
        num_labels=num_labels,
        seed=seed,
        labelled=np.sort(np.concatenate(labelled)).tolist(),
        unlabelled=ulb.tolist(),
        validation=np.sort(np.concatenate(validation)).tolist(),
        include_labelled_in_unlabelled=setting.include_labelled_in_unlabelled,
        validation_source=validation_source,
        long_tailed=asdict(setting),
        lb_class_counts=lb_counts,
        ulb_class_counts=[int(v) for v in ulb_per_class],
    )
