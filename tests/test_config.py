"""Config validation: every bad input is rejected with one line naming the key."""

import pytest
import yaml

from semibench.config import ConfigError, check_config, run_config, run_grid


def base(**overrides):
    cfg = {"algorithms": ["supervised", "fixmatch"], "seeds": [0, 1],
           "tasks": {"mnist": {"num_labels": [40]}}}
    cfg.update(overrides)
    return cfg


def test_default_config_is_valid(repo_root):
    cfg = check_config(yaml.safe_load((repo_root / "config" / "config.yaml").read_text()))
    assert {t for t, *_ in run_grid(cfg)} == {"mnist", "newsgroups", "keywords"}
    assert len(cfg["seeds"]) >= 2


@pytest.mark.parametrize(
    "cfg, message",
    [
        (base(extra=1), "<config>: unknown key(s) extra; allowed: algorithm_params"),
        (base(seeds="0"), "seeds='0': must be of type array"),
        (base(tasks={"mnist": {"lables": [40]}}), "tasks.mnist: unknown key(s) lables"),
        (base(tasks={"mnist": {"num_labels": ["40"]}}), "tasks.mnist.num_labels[0]='40': must be of type integer"),
        (base(tasks={"notatask": {}}), "tasks.notatask: unknown task; allowed: "),
        (base(algorithms=["fixmatch", "fixmach"]), "algorithms: unknown algorithm 'fixmach'; allowed:"),
        (base(algorithms="some"), "algorithms='some': must be a list of algorithm names or \"all\""),
        (base(tasks={"mnist": {"num_labels": [45]}}), "tasks.mnist.num_labels[0]=45: must be a multiple of the 10 classes"),
        (base(tasks={"mnist": {"num_labels": [3800]}}), "tasks.mnist.num_labels[0]=3800: must be smaller than the 3800 samples"),
        (base(train={"iterations": 0}), "train.iterations=0: 0 is less than the minimum of 1"),
        (base(tasks={"mnist": {"train": {"iterations": -5}}}), "tasks.mnist.train.iterations=-5"),
        (base(train={"optimizer": "adam"}), "train.optimizer='adam': allowed values: sgd, adamw"),
        (base(train={"lr": "fast"}), "train.lr='fast': must be of type number"),
        (base(algorithm_params={"fixmatch": {"p_cutoff": 1.5}}), "algorithm_params.fixmatch.p_cutoff=1.5: must be in (0, 1]"),
        (base(algorithm_params={"fixmatch": {"lambda_u": -1.0}}), "algorithm_params.fixmatch.lambda_u=-1.0: must be >= 0"),
        (base(algorithm_params={"fixmatch": {"p_cutoff": "high"}}), "algorithm_params.fixmatch.p_cutoff='high': must be of type float"),
        (base(algorithm_params={"fixmatch": {"tau": 0.9}}), "algorithm_params.fixmatch: unknown parameter(s) tau"),
        (base(algorithm_params={"mixmatchh": {}}), "algorithm_params.mixmatchh: unknown algorithm"),
        (base(algorithm_train={"fixmatch": {"uratio": 0}}), "algorithm_train.fixmatch.uratio=0"),
        (base(algorithm_train={"fixmach": {}}), "algorithm_train.fixmach: unknown algorithm"),
        (base(tasks={"mnist": {"algorithm_params": {"fixmatch": {"p_cutoff": 2.0}}}}), "tasks.mnist.algorithm_params.fixmatch.p_cutoff=2.0: must be in (0, 1]"),
        (base(tasks={"mnist": {"algorithm_params": {"nomatch": {}}}}), "tasks.mnist.algorithm_params.nomatch: unknown algorithm"),
        (base(tasks={"mnist": {"algorithms": ["fixmatch", "flexmach"]}}), "tasks.mnist.algorithms: unknown algorithm 'flexmach'"),
    ],
)
def test_bad_config_one_clear_line(cfg, message):
    with pytest.raises(ConfigError) as info:
        check_config(cfg)
    text = str(info.value)
    assert "\n" not in text
    assert message in text


def test_defaults_filled_and_all_algorithms():
    cfg = check_config({"algorithms": "all", "tasks": {"mnist": {}}})
    assert cfg["seeds"] == [0, 1] and cfg["benchmark"] == "offline" and cfg["threads"] == 1
    assert cfg["tasks"]["mnist"]["num_labels"] == [40]
    assert {a for _, _, a, _ in run_grid(cfg)} >= {"supervised", "fixmatch", "fullysupervised"}


def test_run_config_precedence_and_isolation():
    cfg = check_config(base(train={"lr": 0.1, "iterations": 50},
                            tasks={"mnist": {"num_labels": [40], "train": {"lr": 0.2}}},
                            algorithm_params={"fixmatch": {"p_cutoff": 0.9}}))
    fm = run_config(cfg, "mnist", 40, "fixmatch", 1)
    sup = run_config(cfg, "mnist", 40, "supervised", 1)
    assert fm["train"]["lr"] == 0.2 and fm["train"]["iterations"] == 50  # task beats global
    assert fm["algorithm_params"]["p_cutoff"] == 0.9
    assert sup["algorithm_params"] == {}
    # a fixmatch hyper-parameter change leaves every supervised run's settings unchanged
    cfg2 = check_config(base(train={"lr": 0.1, "iterations": 50},
                             tasks={"mnist": {"num_labels": [40], "train": {"lr": 0.2}}},
                             algorithm_params={"fixmatch": {"p_cutoff": 0.8}}))
    assert run_config(cfg2, "mnist", 40, "supervised", 1) == sup
    assert run_config(cfg2, "mnist", 40, "fixmatch", 1) != fm


def test_task_level_algorithm_list():
    cfg = check_config(base(tasks={"mnist": {"num_labels": [40], "algorithms": ["fixmatch"]},
                                   "keywords": {"num_labels": [50]}}))
    grid = run_grid(cfg)
    assert {a for t, _, a, _ in grid if t == "mnist"} == {"fixmatch"}
    assert {a for t, _, a, _ in grid if t == "keywords"} == {"supervised", "fixmatch"}


def test_algorithm_train_overrides_win_for_that_algorithm_only():
    cfg = check_config(base(tasks={"mnist": {"num_labels": [40], "train": {"uratio": 7}}},
                            algorithm_train={"supervised": {"uratio": 1, "lr": 0.5}}))
    assert run_config(cfg, "mnist", 40, "supervised", 0)["train"]["uratio"] == 1
    assert run_config(cfg, "mnist", 40, "supervised", 0)["train"]["lr"] == 0.5
    assert run_config(cfg, "mnist", 40, "fixmatch", 0)["train"]["uratio"] == 7


def test_task_level_algorithm_params_win_for_that_task():
    cfg = check_config(base(tasks={"mnist": {"num_labels": [40],
                                             "algorithm_params": {"fixmatch": {"T": 0.3}}},
                                   "keywords": {"num_labels": [50]}},
                            algorithm_params={"fixmatch": {"p_cutoff": 0.9, "T": 0.7}}))
    mnist = run_config(cfg, "mnist", 40, "fixmatch", 0)["algorithm_params"]
    keywords = run_config(cfg, "keywords", 50, "fixmatch", 0)["algorithm_params"]
    assert mnist["T"] == 0.3 and mnist["p_cutoff"] == 0.9
    assert keywords["T"] == 0.7 and keywords["p_cutoff"] == 0.9
