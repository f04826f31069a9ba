import numpy as np
import pytest

from semibench.splits import SplitError, make_split, read_split, write_split
from tests.helpers.runs import toy_labels


def split(labels, **kw):
    args = dict(task="toy", num_classes=4, num_labels=8, val_per_class=3, seed=0)
    args.update(kw)
    return make_split(labels, **args)


def test_class_balance_and_sizes():
    y = toy_labels()
    s = split(y)
    assert np.bincount(y[s.labelled], minlength=4).tolist() == [2, 2, 2, 2]
    assert np.bincount(y[s.validation], minlength=4).tolist() == [3, 3, 3, 3]
    assert len(s.unlabelled) == len(y) - len(s.validation)


def test_disjointness_and_usb_inclusion():
    y = toy_labels()
    s = split(y)
    lb, ulb, val = set(s.labelled), set(s.unlabelled), set(s.validation)
    assert not (val & lb) and not (val & ulb)
    assert lb <= ulb  # USB's include_lb_to_ulb
    assert lb | ulb | val == set(range(len(y)))
    s2 = split(y, include_labelled_in_unlabelled=False)
    assert not set(s2.labelled) & set(s2.unlabelled)


def test_deterministic_per_seed_and_byte_identical(tmp_path):
    y = toy_labels()
    write_split(split(y, seed=3), tmp_path / "a.json")
    write_split(split(y, seed=3), tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert read_split(tmp_path / "a.json") == split(y, seed=3)


def test_different_seeds_differ():
    y = toy_labels()
    a, b = split(y, seed=0), split(y, seed=1)
    assert a.labelled != b.labelled
    assert a.validation != b.validation


def test_validation_independent_of_budget_and_budgets_nested():
    y = toy_labels()
    small, large = split(y, num_labels=4), split(y, num_labels=12)
    assert small.validation == large.validation
    assert set(small.labelled) <= set(large.labelled)


@pytest.mark.parametrize("num_labels", [0, 6, 7])
def test_budget_not_multiple_of_classes(num_labels):
    with pytest.raises(SplitError, match="multiple"):
        split(toy_labels(), num_labels=num_labels)


def test_budget_larger_than_pool():
    with pytest.raises(SplitError, match="class 0 has 30"):
        split(toy_labels(), num_labels=4 * 27)


def test_samples_without_label_only_join_the_unlabelled_set():
    y = toy_labels()
    y_with_unlabelled = np.concatenate([y, np.full(15, -1)])
    s = split(y_with_unlabelled)
    no_label = set(range(len(y), len(y) + 15))
    assert no_label <= set(s.unlabelled)
    assert not no_label & (set(s.labelled) | set(s.validation))
    assert np.bincount(y_with_unlabelled[s.labelled]).tolist() == [2, 2, 2, 2]


def test_source_validation_draws_nothing_from_the_pool():
    y = toy_labels()
    s = split(y, validation_source="prepared")
    assert s.validation == [] and s.validation_source == "prepared"
    assert len(s.unlabelled) == len(y)


def test_fixed_labelled_set_is_the_same_for_every_seed():
    y = np.array([0, 1, 2, 3, 0, 1, -1, -1, -1, 2, 3, -1])
    a = split(y, num_labels=8, fixed_labelled=True, validation_source="prepared", seed=0)
    b = split(y, num_labels=8, fixed_labelled=True, validation_source="prepared", seed=5)
    assert a.labelled == b.labelled == [0, 1, 2, 3, 4, 5, 9, 10]
    assert a.unlabelled == [6, 7, 8, 11]
    with pytest.raises(SplitError, match="fixed at 8"):
        split(y, num_labels=4, fixed_labelled=True, validation_source="prepared")
    with pytest.raises(SplitError, match="validation split"):
        split(y, num_labels=8, fixed_labelled=True)
