"""CReST / CReST+: the class-rebalanced selection on a hand-computed example, the progressive
alignment target, and generations in the real trainer (a fresh model, a larger labelled set,
exact resume across a generation boundary)."""

from __future__ import annotations

import json

import pytest
import torch

from semibench.algorithms.base import DataInfo
from semibench.compose import create_algorithm, parse_label
from semibench.imbalance.crest import crest_selection
from semibench.train.loop import Trainer, TrainingStopped, train_run
from tests.helpers.imbalance import lt_settings as settings


def test_selection_hand_computed():
    # labelled counts 9, 3, 1: gamma = 9, C = 3, mu = 1/3; alpha = 1: the head class (rank 0)
    # keeps mu^2 = 1/9 of its predictions, rank 1 mu = 1/3, the tail all
    pred = torch.tensor([0] * 10 + [1] * 7 + [2] * 2)
    score = torch.arange(19, dtype=torch.float) / 100  # later samples more confident
    chosen = crest_selection(score, pred, torch.tensor([9, 3, 1]), alpha=1.0)
    # class 0: floor(10 / 9) = 1, its most confident (position 9); class 1: floor(7 / 3) = 2
    # (positions 16, 15); class 2: both (18, 17)
    assert chosen.tolist() == [9, 16, 15, 18, 17]


def test_selection_ranks_by_count_not_index():
    # the head class is class 2 here: it keeps the fewest
    pred = torch.tensor([0] * 6 + [2] * 6)
    score = torch.ones(12)
    chosen = crest_selection(score, pred, torch.tensor([1, 2, 4]), alpha=1.0)
    # gamma = 4, mu = 1/2: class 2 (rank 0) keeps 6/4 -> 1, class 0 (rank 2) keeps all 6
    assert sorted(chosen.tolist()) == [0, 1, 2, 3, 4, 5, 6]


def test_progressive_target_tempers_to_dist_align_t():
    method = create_algorithm(parse_label("fixmatch_crestplus"), None, {"num_gens": 3},
                              num_classes=2, num_iterations=6, num_ulb=4).method
    method.attach(None, None, DataInfo(domain="image", num_classes=2, num_lb=5, num_ulb=4,
                                       lb_class_counts=torch.tensor([4, 1])))
    assert method.alignment_target().tolist() == pytest.approx([0.8, 0.2])
    method.generation = 2  # the last: t = 0.5, target proportional to sqrt(0.8), sqrt(0.2)
    assert method.alignment_target().tolist() == pytest.approx([2 / 3, 1 / 3])
    method.generation = 1  # t = 0.75
    a, b = 0.8 ** 0.75, 0.2 ** 0.75
    assert method.alignment_target().tolist() == pytest.approx([a / (a + b), b / (a + b)])


@pytest.mark.parametrize("algorithm", ["fixmatch_crest", "flexmatch_crestplus"])
def test_generations_in_the_trainer(algorithm, lt_data, tmp_path):
    prepared, split = lt_data
    run = settings(algorithm, iterations=8, eval_every=2)
    trainer = Trainer(run, prepared, split, tmp_path)
    assert trainer.milestones == [4] and trainer.generation_length == 4
    labelled = len(trainer.lb_pool)
    first_model = trainer.model
    metrics = trainer.fit()
    assert trainer.model is not first_model  # generation 2 trains a fresh model
    assert len(trainer.lb_pool) == labelled + trainer.algorithm.method.added
    assert trainer.algorithm.method.added > 0
    assert metrics["last"]["iteration"] == 8 and len(metrics["config"]) > 0
    assert "generation 2 of 2 starts at iteration 4" in (tmp_path / "history.log").read_text()
    # the schedule restarts: the learning rate at the first step of generation 2 is the first
    lrs = [row["lr"] for row in trainer.curve]
    assert lrs[1] == pytest.approx(lrs[3])  # iterations 4 and 8 sit at the same point


def test_resume_across_a_generation_is_exact(lt_data, tmp_path):
    prepared, split = lt_data
    run = settings("fixmatch_crestplus", iterations=8, eval_every=2)
    whole = train_run(run, prepared, split, tmp_path / "whole")
    stops = 0
    while True:  # a SIGTERM stops every job after one step; each rerun resumes
        try:
            pieces = train_run(run, prepared, split, tmp_path / "pieces", early_signals=[15])
            break
        except TrainingStopped:
            stops += 1
    assert stops == 7
    # every evaluation, losses included, as if the run had never stopped
    assert json.dumps(whole["best"]) == json.dumps(pieces["best"])
    assert whole["last"] == pieces["last"]
    rows = [(tmp_path / d / "curve.csv").read_text() for d in ("whole", "pieces")]
    strip = [[line.rsplit(",", 1)[0] for line in r.splitlines()] for r in rows]  # not elapsed
    assert strip[0] == strip[1]


def _attached(name: str, counts=(4, 1)):
    algo = create_algorithm(parse_label(name), None, {"num_gens": 3}, num_classes=2,
                            num_iterations=6, num_ulb=4)
    info = DataInfo(domain="image", num_classes=2, num_lb=sum(counts), num_ulb=4,
                    lb_class_counts=torch.tensor(counts))
    algo.attach(torch.nn.Identity(), None, info)
    return algo


def test_crestplus_aligns_the_weak_view_before_fixmatch_reads_it():
    from semibench.algorithms.base import Batch, Outputs

    algo = _attached("fixmatch_crestplus")
    probs = torch.tensor([[0.9, 0.1], [0.5, 0.5]])
    out = Outputs(logits={"ulb_weak": probs.log(), "ulb_strong": torch.zeros(2, 2)}, feats={})
    adjusted = algo.method.adjust_outputs(out, Batch(x_lb={}, y_lb=torch.zeros(0)), 0)
    # first batch: p_model = mean = (0.7, 0.3); target (generation 0, t = 1) = (0.8, 0.2)
    scale = torch.tensor([0.8 / 0.7, 0.2 / 0.3])
    expected = probs * scale
    expected = expected / expected.sum(dim=1, keepdim=True)
    assert torch.softmax(adjusted.logits["ulb_weak"], dim=1) == pytest.approx(expected, abs=1e-5)
    assert adjusted.logits["ulb_strong"] is out.logits["ulb_strong"]


def test_crestplus_replaces_remixmatch_alignment_and_crest_does_not():
    plus = _attached("remixmatch_crestplus")
    assert plus.base.dist_align is plus.method.aligner and plus.method.replaces_base
    plain = _attached("remixmatch_crest")
    assert plain.method.aligner is None
    assert plain.base.dist_align.target == "gt"  # ReMixMatch's own, untouched


def test_iterations_not_a_multiple_of_generations_is_a_config_error():
    from semibench.config import ConfigError, check_config, run_config

    cfg = {"algorithms": ["fixmatch_crest"], "seeds": [0],
           "tasks": {"mnist": {"num_labels": [40], "train": {"iterations": 100}}}}
    # the config check resolves every run (check_train_settings), so it stops there already
    with pytest.raises(ConfigError, match=r"train.iterations=100 is not a multiple of 6") as err:
        check_config(cfg)
    assert "\n" not in str(err.value) and "imbalance_params.crest.num_gens" in str(err.value)
    checked = check_config({**cfg, "tasks": {"mnist": {"num_labels": [40],
                                                       "train": {"iterations": 96}}}})
    checked["tasks"]["mnist"]["train"]["iterations"] = 100  # and run_config on its own
    with pytest.raises(ConfigError, match=r"train.iterations=100 is not a multiple of 6"):
        run_config(checked, "mnist", 40, "fixmatch_crest", 0)
