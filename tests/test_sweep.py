"""Sweeps (semibench.sweep): a list of values in algorithm_params or train is a grid axis, each
point a run with its own label, settings and report row; and ``semibench run``'s config."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from semibench import sweep
from semibench.cli.workflow import RunCommandError, derived_config, parse_sets, rebased
from semibench.config import ConfigError, check_config, run_config, run_grid
from semibench.report.sensitivity import sensitivity, sweep_cell, swept_tasks
from tests.helpers.pipeline import TINY_TRAIN


def config(**extra) -> dict:
    return {"benchmark": "sweep", "seeds": [0], "algorithms": ["supervised", "fixmatch"],
            "tasks": {"mnist": {"num_labels": [20], "train": dict(TINY_TRAIN)}}, **extra}


def test_a_list_in_algorithm_params_is_one_run_per_value():
    checked = check_config(config(algorithm_params={"fixmatch": {"p_cutoff": [0.9, 0.95]}}))
    assert checked["algorithm_params"]["fixmatch"]["p_cutoff"] == [0.9, 0.95]  # kept
    grid = run_grid(checked)
    assert [label for _, _, label, _ in grid] == [
        "supervised", "fixmatch,p_cutoff=0.9", "fixmatch,p_cutoff=0.95"]
    runs = {label: run_config(checked, *run) for run in grid for label in [run[2]]}
    assert runs["fixmatch,p_cutoff=0.95"]["algorithm_params"]["p_cutoff"] == 0.95
    assert runs["fixmatch,p_cutoff=0.95"]["sweep"] == {"p_cutoff": 0.95}
    assert runs["fixmatch,p_cutoff=0.95"]["algorithm"] == "fixmatch"
    # a run that is not swept keeps exactly the settings it had without the sweep
    plain = check_config(config())
    assert runs["supervised"] == run_config(plain, "mnist", 20, "supervised", 0)
    assert "sweep" not in runs["supervised"]


def test_train_and_algorithm_lists_make_their_product_and_the_task_level_wins():
    cfg = config(algorithm_params={"fixmatch": {"p_cutoff": [0.9, 0.95]}},
                 train={"lr": [0.01, 0.03]})
    cfg["tasks"]["mnist"]["algorithm_params"] = {"fixmatch": {"p_cutoff": 0.97}}
    grid = run_grid(check_config(cfg))
    labels = sorted({label for _, _, label, _ in grid})
    # the task's scalar p_cutoff wins over the top-level list; lr is swept for both
    assert labels == ["fixmatch,train.lr=0.01", "fixmatch,train.lr=0.03",
                      "supervised,train.lr=0.01", "supervised,train.lr=0.03"]
    run = run_config(check_config(cfg), "mnist", 20, "fixmatch,train.lr=0.03", 0)
    assert run["train"]["lr"] == 0.03 and run["algorithm_params"]["p_cutoff"] == 0.97


@pytest.mark.parametrize("values, message", [
    ([], "needs one or more"),
    ([0.9, 0.90], "same point"),
    ([0.9, 1.5], "p_cutoff"),  # each value is checked by the algorithm's own ranges
    ([0.9, [0.1]], "numbers, strings or booleans"),
])
def test_a_bad_axis_is_one_line_naming_the_key(values, message):
    with pytest.raises(ConfigError) as err:
        check_config(config(algorithm_params={"fixmatch": {"p_cutoff": values}}))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_each_swept_train_value_meets_the_schema():
    with pytest.raises(ConfigError, match=r"train\.lr=-0\.1"):
        check_config(config(train={"lr": [0.01, -0.1]}))


def test_a_label_that_is_no_point_of_the_config_is_refused():
    checked = check_config(config(algorithm_params={"fixmatch": {"p_cutoff": [0.9, 0.95]}}))
    with pytest.raises(ConfigError, match="fixmatch,p_cutoff=0.9, fixmatch,p_cutoff=0.95"):
        run_config(checked, "mnist", 20, "fixmatch,p_cutoff=0.8", 0)


def test_labels_fit_the_workflows_wildcard():
    import re

    for value in (0.9, 1e-05, 200, True, "adamw"):
        label = sweep.point_label("fixmatch_abc", {"p_cutoff": value, "train.lr": 0.01})
        assert re.fullmatch(sweep.LABEL_PATTERN, label), label
        assert sweep.unswept(label) == "fixmatch_abc"


def test_the_sensitivity_table_groups_runs_by_value():
    runs = pd.DataFrame([
        {"task": "mnist", "num_labels": 20, "algorithm": f"fixmatch,p_cutoff={v}", "seed": s,
         "best_test_error": e, "last_test_error": e + 1, "sweep": sweep_cell({"p_cutoff": v})}
        for v, s, e in [(0.9, 0, 30.0), (0.9, 1, 34.0), (0.95, 0, 20.0), (0.95, 1, 22.0)]
    ] + [{"task": "mnist", "num_labels": 20, "algorithm": "supervised", "seed": 0,
          "best_test_error": 50.0, "last_test_error": 50.0, "sweep": ""}])
    table = sensitivity(runs)
    assert list(table["value"]) == [0.9, 0.95]
    assert list(table["best_test_error_mean"]) == [32.0, 21.0]
    assert list(table["n_runs"]) == [2, 2] and set(table["algorithm"]) == {"fixmatch"}
    assert swept_tasks({"mnist": runs["algorithm"], "keywords": ["fixmatch"]}) == ["mnist"]
    # runs.csv round trip: the cell is JSON
    assert json.loads(runs["sweep"][0]) == {"p_cutoff": 0.9}


def test_run_command_config_takes_the_task_one_algorithm_and_the_overrides(tmp_path):
    base = {"benchmark": "offline", "seeds": [0, 1], "algorithms": ["supervised"],
            "plugins": ["lab/x.py", "my_lab.module"],
            "tasks": {"mnist": {"num_labels": [40, 80], "algorithms": ["supervised"],
                                "train": {"iterations": 600}},
                      "mine": {"from_files": {"domain": "text", "train": "data/t.csv"}}}}
    sets = parse_sets(["train.iterations=200", "algorithm_params.fixmatch.p_cutoff=[0.9,0.95]"])
    cfg = derived_config(base, "mnist", "fixmatch", [3], None, sets, "run")
    assert cfg["benchmark"] == "run" and cfg["seeds"] == [3] and cfg["algorithms"] == ["fixmatch"]
    # --set train.x and algorithm_params.x go on the task, where they win over its settings
    assert cfg["tasks"] == {"mnist": {
        "num_labels": [40], "train": {"iterations": 200},
        "algorithm_params": {"fixmatch": {"p_cutoff": [0.9, 0.95]}}}}
    assert "train" not in cfg and "algorithm_params" not in cfg
    assert cfg["plugins"] == ["lab/x.py", "my_lab.module"]  # as written: read from its folder
    other = derived_config(base, "mine", "fixmatch", [0], [10], [], "run")
    assert other["tasks"]["mine"]["num_labels"] == [10]
    # written elsewhere (a read-only config folder), its paths are made absolute
    moved = rebased(other, tmp_path)
    assert moved["plugins"] == [str(tmp_path / "lab/x.py"), "my_lab.module"]
    assert moved["tasks"]["mine"]["from_files"]["train"] == str(tmp_path / "data/t.csv")


@pytest.mark.parametrize("item", ["train.iterations", "=3", "train..lr=1", "a=[1,"])
def test_run_command_refuses_a_malformed_set(item):
    with pytest.raises(RunCommandError):
        parse_sets([item])
