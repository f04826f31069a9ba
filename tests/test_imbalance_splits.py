"""Long-tailed split rules (semibench.splits_lt): hand-computed per-class counts."""

import numpy as np
import pytest

from semibench.splits import SplitError, read_split, write_split
from semibench.splits_lt import (
    LongTailed,
    long_tailed_counts,
    long_tailed_setting,
    make_long_tailed_split,
    parse_tag,
)


def test_cifar10_lt_counts_match_usb_rule():
    # mu = 0.01 ** (1/9) = 0.59948...; int(1500 * mu**c): 1500, 899.2, 539.1, 323.2, 193.7,
    # 116.1, 69.6, 41.7, 25.0; the last int(1500 / 100) = 15
    assert long_tailed_counts(1500, 10, 100) == [1500, 899, 539, 323, 193, 116, 69, 41, 25, 15]
    assert long_tailed_counts(3000, 10, 100) == [3000, 1798, 1078, 646, 387, 232, 139, 83, 50,
                                                 30]
    # gamma = 1 is balanced; a reversed distribution is the same counts tail first
    assert long_tailed_counts(7, 3, 1) == [7, 7, 7]
    assert long_tailed_counts(100, 3, 4, reversed_=True) == [25, 50, 100]


def test_three_class_counts_by_hand():
    # C = 3, gamma = 9: mu = 1/3; 90, int(30.000000000000004) = 30, int(90 / 9) = 10
    assert long_tailed_counts(90, 3, 9) == [90, 30, 10]
    # gamma = 10: mu = 0.3162...; 40, int(12.649) = 12, int(4.0) = 4
    assert long_tailed_counts(40, 3, 10) == [40, 12, 4]


def labels_per_class(n: int, classes: int) -> np.ndarray:
    return np.repeat(np.arange(classes), n)


def test_split_counts_disjoint_and_recorded(tmp_path):
    y = labels_per_class(60, 3)
    setting = LongTailed(lb_gamma=9, ulb_gamma=4, ulb_head=40)
    s = make_long_tailed_split(y, task="toy", num_classes=3, num_labels=18, setting=setting,
                               val_per_class=2, seed=0)
    # labelled 18, int(18/3) = 6, int(18/9) = 2; unlabelled 40, int(40 * 0.5) = 20, 10
    assert np.bincount(y[s.labelled], minlength=3).tolist() == [18, 6, 2]
    assert np.bincount(y[s.unlabelled], minlength=3).tolist() == [40, 20, 10]
    assert np.bincount(y[s.validation], minlength=3).tolist() == [2, 2, 2]  # balanced
    assert s.lb_class_counts == [18, 6, 2] and s.ulb_class_counts == [40, 20, 10]
    lb, ulb, val = set(s.labelled), set(s.unlabelled), set(s.validation)
    assert not (lb & ulb) and not (lb & val) and not (ulb & val)
    write_split(s, tmp_path / "s.json")
    assert read_split(tmp_path / "s.json") == s
    assert '"lb_class_counts": [18, 6, 2]' in (tmp_path / "s.json").read_text()


def test_reversed_unlabelled_and_all_remaining():
    y = np.concatenate([labels_per_class(60, 3), np.full(7, -1)])
    rev = LongTailed(lb_gamma=9, ulb_gamma=4, ulb_head=40, ulb_reversed=True)
    s = make_long_tailed_split(y, task="toy", num_classes=3, num_labels=18, setting=rev,
                               val_per_class=2, seed=1)
    assert s.ulb_class_counts == [10, 20, 40]
    rest = LongTailed(lb_gamma=9, ulb_gamma=9)  # no M1: every remaining sample, and the -1s
    s = make_long_tailed_split(y, task="toy", num_classes=3, num_labels=18, setting=rest,
                               val_per_class=2, seed=1)
    assert s.ulb_class_counts == [60 - 2 - 18, 60 - 2 - 6, 60 - 2 - 2]
    assert len(s.unlabelled) == 40 + 52 + 56 + 7


def test_deterministic_and_seed_dependent():
    y = labels_per_class(60, 3)
    setting = LongTailed(lb_gamma=9, ulb_gamma=9, ulb_head=30)
    args = dict(task="toy", num_classes=3, num_labels=18, setting=setting, val_per_class=2)
    a, b = (make_long_tailed_split(y, seed=5, **args) for _ in range(2))
    assert a.to_json() == b.to_json()
    assert make_long_tailed_split(y, seed=6, **args).labelled != a.labelled


def test_too_few_samples_is_one_line_error():
    y = labels_per_class(20, 3)
    setting = LongTailed(lb_gamma=9, ulb_gamma=9, ulb_head=30)
    with pytest.raises(SplitError, match="class 0 has 20 training samples") as err:
        make_long_tailed_split(y, task="toy", num_classes=3, num_labels=18, setting=setting,
                               val_per_class=2, seed=0)
    assert "\n" not in str(err.value)


def test_setting_checks():
    assert long_tailed_setting({"lb_gamma": 100}, 1500) == LongTailed(100.0, 100.0)
    section = {"lb_gamma": 100, "ulb_gamma": 100, "ulb_head": {"1500": 3000, "500": 4000}}
    assert long_tailed_setting(section, 500).ulb_head == 4000
    with pytest.raises(ValueError, match=r"lb_gamma=0.5: must be a number >= 1"):
        long_tailed_setting({"lb_gamma": 0.5}, 10)
    with pytest.raises(ValueError, match=r"ulb_gamma=-100: must be a number >= 1"):
        long_tailed_setting({"lb_gamma": 100, "ulb_gamma": -100}, 10)
    with pytest.raises(ValueError, match="no entry for num_labels 150"):
        long_tailed_setting(section, 150)
    with pytest.raises(ValueError, match="unknown key"):
        long_tailed_setting({"lb_gamma": 10, "gamma": 3}, 10)
    with pytest.raises(ValueError, match="needs ulb_head"):
        long_tailed_setting({"lb_gamma": 10, "ulb_gamma": 10}, 10)
    assert long_tailed_setting({"lb_gamma": 10, "ulb_gamma": 1}, 10).ulb_head is None


def test_tag_round_trip():
    for s in (LongTailed(100, 100, 3000), LongTailed(10, 2.5, None, True, True)):
        assert parse_tag(s.tag(1500)) == s
    assert LongTailed(100, 100, 3000, ulb_reversed=True).tag(1) == "lt_l100_ur100_m3000"


def test_gmean_and_head_medium_tail_by_hand():
    import torch

    from semibench.train.evaluate import class_groups, classification_metrics, group_fields

    # 3 classes, 4 test samples each; recalls 1, 0.5, 0.25
    y = torch.tensor([0] * 4 + [1] * 4 + [2] * 4)
    pred = torch.tensor([0, 0, 0, 0, 1, 1, 0, 0, 2, 0, 0, 0])
    r = classification_metrics(y, pred[:, None], 3, pred=pred)
    assert r.gmean_recall == pytest.approx(100 * (1 * 0.5 * 0.25) ** (1 / 3))  # 50.0
    assert r.balanced_error == pytest.approx(100 - 100 * (1 + 0.5 + 0.25) / 3)
    zero = classification_metrics(y, torch.zeros(12, 1, dtype=torch.long), 3,
                                  pred=torch.zeros(12, dtype=torch.long))
    assert zero.gmean_recall == 0.0  # a class never recalled
    # labelled counts 5, 20, 10 (not sorted by index): head = class 1, medium 2, tail 0
    groups = class_groups([5, 20, 10])
    assert groups == {"head": [1], "medium": [2], "tail": [0]}
    assert group_fields(r, groups) == {"test_head_accuracy": 50.0,
                                       "test_medium_accuracy": 25.0,
                                       "test_tail_accuracy": 100.0}
    # 10 classes: 4 / 3 / 3, ties by index
    assert class_groups([9, 9, 5, 5, 5, 3, 3, 1, 1, 1]) == {
        "head": [0, 1, 2, 3], "medium": [4, 5, 6], "tail": [7, 8, 9]}


def test_balanced_split_file_has_no_long_tailed_keys():
    from semibench.splits import make_split

    s = make_split(labels_per_class(10, 2), task="toy", num_classes=2, num_labels=4,
                   val_per_class=1, seed=0)
    text = s.to_json()
    assert "long_tailed" not in text and "class_counts" not in text  # byte-identical to before


def test_report_commands_accept_every_metric():
    """The report commands' --show-metrics choices are the recorded metrics (a metric the
    config may name must not fail the aggregate job)."""
    import argparse

    from semibench.cli import build_parser
    from semibench.train.evaluate import METRICS

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("aggregate", "report"):
        if name not in subparsers.choices:
            continue
        action = next(a for a in subparsers.choices[name]._actions
                      if "--show-metrics" in a.option_strings)
        assert list(action.choices) == list(METRICS)
