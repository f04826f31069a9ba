"""Compositions in the real trainer on a long-tailed split: one short run per (base, method),
a checkpoint round trip with an identical next step, and the split made by the CLI."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from semibench.config import check_config, run_config
from semibench.imbalance import IMBALANCE
from semibench.inference import evaluate_run
from semibench.train.loop import Trainer, train_run
from tests.helpers.imbalance import lt_settings
from tests.helpers.runs import states_equal

#: two base algorithms for every method (Adsh and TRAS compose with FixMatch only)
BASES = {"adsh": ["fixmatch"], "tras": ["fixmatch"]}


def test_cli_split_records_long_tailed_counts(lt_data):
    split = json.loads(lt_data[1].read_text())
    # N1 = 8, gamma 4, C = 10: mu = 4^(-1/9); 8 mu^c = 8, 6.86, 5.88, 5.04, 4.32, 3.70, 3.18,
    # 2.72, 2.33 truncated; the last 8 / 4 = 2; M1 = 12: 12, 10.29, 8.82, 7.56, ..., 3.50, 3
    assert split["lb_class_counts"] == [8, 6, 5, 5, 4, 3, 3, 2, 2, 2]
    assert split["ulb_class_counts"] == [12, 10, 8, 7, 6, 5, 4, 4, 3, 3]
    assert split["long_tailed"]["ulb_head"] == 12
    assert len(split["labelled"]) == sum(split["lb_class_counts"])


COMPOSITIONS = [f"{base}_{method}" for method in IMBALANCE.names()
                for base in BASES.get(method, ["fixmatch", "remixmatch"])]


@pytest.mark.parametrize("algorithm", COMPOSITIONS)
def test_composition_runs(algorithm, lt_data, tmp_path):
    prepared, split = lt_data
    run = lt_settings(algorithm)
    metrics = train_run(run, prepared, split, tmp_path)
    assert metrics["algorithm"] == algorithm and metrics["last"]["iteration"] == 4
    assert metrics["config"]["split_tag"] == "lt_l4_u4_m12"
    # labelled counts 8, 6, 5, 5, 4, 3, 3, 2, 2, 2: thirds by count, ties by index
    assert metrics["class_groups"] == {"head": [0, 1, 2, 3], "medium": [4, 5, 6],
                                       "tail": [7, 8, 9]}
    last = metrics["last"]
    assert last["test_tail_accuracy"] == pytest.approx(
        sum(last["test_per_class_accuracy"][7:]) / 3)
    assert 0 <= last["test_gmean_recall"] <= 100
    # the checkpoints reproduce the recorded numbers through the run's own predictor (ABC
    # predicts with its balanced head, which the saved model carries)
    evaluations, note = evaluate_run(tmp_path, prepared)
    assert note == "" and all(not e.differences for e in evaluations)


@pytest.mark.parametrize("algorithm", COMPOSITIONS)
def test_checkpoint_round_trip_next_loss(algorithm, lt_data, tmp_path):
    prepared, split = lt_data
    run = lt_settings(algorithm, iterations=8, eval_every=8)
    first = Trainer(run, prepared, split, tmp_path)
    for step in range(5):
        first.train_step(step)
    first.checkpoints.save(first._state(5, 0.0))  # with its SHA-256 record
    second = Trainer(run, prepared, split, tmp_path)  # resumes from checkpoint.pt
    assert second.start_iteration == 5
    assert states_equal(second.algorithm.state_dict(), first.algorithm.state_dict())
    first.train_step(5)
    second.train_step(5)
    assert first.logs.means() == pytest.approx(second.logs.means(), rel=1e-6, abs=1e-7)
    assert states_equal(second.algorithm.state_dict(), first.algorithm.state_dict())


def test_classic_cv_imb_config(repo_root):
    cfg = check_config(yaml.safe_load((repo_root / "config" / "classic_cv_imb.yaml").read_text()))
    run = run_config(cfg, "cifar10", 500, "remixmatch_abc", 0)
    # USB pairs N1 = 500 with M1 = 4000; ReMixMatch's uratio 1 holds for its compositions
    assert run["split_tag"] == "lt_l100_u100_m4000" and run["train"]["uratio"] == 1
    assert run_config(cfg, "cifar10", 1500, "fixmatch_abc", 0)["train"]["uratio"] == 2
    assert run_config(cfg, "stl10", 150, "fixmatch", 0)["split_tag"] == "lt_l10_u1_mall"


def test_published_imbalanced_numbers_are_errors():
    from semibench.report.published import load_published

    table = load_published(["classic_cv_imb", "classic_cv_imb_reversed"])
    row = table.query("benchmark == 'classic_cv_imb' and task == 'cifar10' and num_labels == 1500"
                      " and algorithm == 'fixmatch_abc'")
    assert row[["error_mean", "error_std"]].values.tolist() == [[16.12, 0.27]]  # 100 - 83.88
    reversed_ = table.query("benchmark == 'classic_cv_imb_reversed' and task == 'cifar100' "
                            "and algorithm == 'supervised'")
    assert reversed_["error_mean"].tolist() == [pytest.approx(100 - 48.33)]
    assert "remixmatch_adsh" not in set(table["algorithm"])  # USB's None cells are left out


@pytest.mark.slow
def test_dry_run_has_long_tailed_split_jobs(repo_root, tmp_path):
    from tests.helpers.workflow import snakemake

    run = snakemake(tmp_path, "-n", "--quiet", "rules", "--configfile",
                    str(repo_root / "config" / "classic_cv_imb.yaml"))
    assert run.returncode == 0, run.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", run.stdout + run.stderr, re.M))
    # USB's 11 settings (CIFAR-10: 3 x 2 budgets, CIFAR-100: 3, STL-10: 2) x 3 seeds splits,
    # no balanced split job; the variants read their task's data: 3 fetches and prepares
    assert int(counts["split_long_tailed"]) == 11 * 3 and "split" not in counts
    assert int(counts["fetch"]) == int(counts["prepare"]) == 3
    algorithms = yaml.safe_load((repo_root / "config" / "classic_cv_imb.yaml").read_text())[
        "algorithms"]
    assert int(counts["train"]) == 11 * 3 * len(algorithms)
