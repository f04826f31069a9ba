"""Config validation: every bad input is rejected with one line naming the key."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from semibench.augment import build_views
from semibench.backbones import BACKBONES, create_backbone
from semibench.config import (
    VIEW_BUILDERS,
    ConfigError,
    backbone_arguments,
    check_config,
    run_config,
    run_grid,
    view_arguments,
)
from semibench.splits import make_split
from semibench.tasks import TASKS, create_task
from semibench.train.sampling import BatchSampler, step_generator


def base(**overrides):
    cfg = {"algorithms": ["supervised", "fixmatch"], "seeds": [0, 1],
           "tasks": {"mnist": {"num_labels": [40]}}}
    cfg.update(overrides)
    return cfg


def test_default_config_is_valid(repo_root):
    cfg = check_config(yaml.safe_load((repo_root / "config" / "config.yaml").read_text()))
    assert {t for t, *_ in run_grid(cfg)} == {"mnist", "mnist_lt", "newsgroups", "keywords"}
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


# --------------------------------------------------------------------------------------------
# Every config the schema accepts can run (issue 8, item 5): what used to pass validation and
# then fail in every train job is now rejected up front, or runs.


@pytest.mark.parametrize(
    "cfg, message",
    [
        # jsonschema counts 60.0 as an integer; range(60.0) fails in the trainer
        (base(train={"iterations": 60.0}), "train.iterations=60.0: must be an integer"),
        (base(tasks={"mnist": {"train": {"batch_size": 16.0}}}),
         "tasks.mnist.train.batch_size=16.0: must be an integer"),
        (base(algorithm_train={"fixmatch": {"uratio": 2.0}}),
         "algorithm_train.fixmatch.uratio=2.0: must be an integer"),
        # a directory "40.0" or "seed1.0" that no rule makes (MissingInputException)
        (base(tasks={"mnist": {"num_labels": [40.0]}}),
         "tasks.mnist.num_labels[0]=40.0: must be an integer"),
        (base(seeds=[1.0]), "seeds[0]=1.0: must be an integer"),
        (base(threads=2.0), "threads=2.0: must be an integer"),
        (base(seeds=[2**63]), "seeds[0]=9223372036854775808: 9223372036854775808 is greater than "
                              "the maximum of 9223372036854775807"),
        # .nan passes every range check of the schema
        (base(train={"lr": float("nan")}), "train.lr=nan: must be a finite number"),
        (base(tasks={"mnist": {"backbone": "resnet50"}}),
         "tasks.mnist.backbone='resnet50': unknown backbone; allowed: bert_base_uncased, cnn_small"),
        (base(tasks={"mnist": {"backbone_args": {"widht": 8}}}),
         "tasks.mnist.backbone_args: unknown key(s) widht for backbone cnn_small; "
         "allowed: drop, in_chans, stem_stride, width"),
        (base(tasks={"mnist": {"backbone": "vit_tiny_patch2_32",
                               "backbone_args": {"pretrained": False, "drop": 0.1}}}),
         "tasks.mnist.backbone_args: unknown key(s) drop for backbone vit_tiny_patch2_32; "
         "allowed: attn_drop_rate"),
        (base(tasks={"newsgroups": {"backbone_args": {"layers": 2}}}),
         "tasks.newsgroups.backbone_args: unknown key(s) layers for backbone minilm_l6; allowed: "
         "drop, max_length, pool, pretrained, pretrained_dir, trainable_layers"),
        (base(tasks={"mnist": {"augment": {"flip": True}}}),
         "tasks.mnist.augment: unknown key(s) flip for image views; allowed: as_rgb, crop_ratio"),
        (base(tasks={"newsgroups": {"augment": {"drop_prob": 0.2}}}),
         "tasks.newsgroups.augment: unknown key(s) drop_prob for text views; allowed: cls_id"),
        (base(tasks={"keywords": {"augment": {"mels": 64}}}),
         "tasks.keywords.augment: unknown key(s) mels for audio views; allowed: crop_seconds"),
        (base(tasks={"mnist": {"augment": {"crop_ratio": 2.0}}}),
         "tasks.mnist.augment: crop_ratio must be in (0, 1], got 2.0"),
        (base(tasks={"keywords": {"augment": {"features": "mfcc"}}}),
         "tasks.keywords.augment: features='mfcc'; allowed: logmel, waveform"),
        # a path, not a name: ".." wrote runs/ and index.html at the repository root
        (base(benchmark=".."), "benchmark='..': must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
        (base(benchmark="../elsewhere"), "benchmark='../elsewhere': must match"),
        (base(benchmark="a/b"), "benchmark='a/b': must match"),
        (base(benchmark=".hidden"), "benchmark='.hidden': must match"),
    ],
)
def test_accepted_but_broken_configs_are_rejected(cfg, message):
    with pytest.raises(ConfigError) as info:
        check_config(cfg)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(message)  # the key first, then what is allowed


def test_integer_settings_still_take_integers():
    cfg = check_config(base(seeds=[0, 2**63 - 1], threads=2, benchmark="my-run_2.1",
                            train={"iterations": 60, "lr": 1}))
    assert cfg["train"]["iterations"] == 60 and cfg["seeds"][-1] == 2**63 - 1


def _reference_generator(seed: int, stream: int, step: int) -> torch.Generator:
    """step_generator as it was: torch takes a combined seed below 2**64 as it is."""
    return torch.Generator().manual_seed((seed * 1_000_003 + stream) * 10_000_019 + step)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 42, 1_000_000, 1_844_000])
def test_step_generator_unchanged_for_seeds_that_worked(seed):
    for stream in range(5):
        for step in (0, 1, 7, 1000, 2**20):
            new, old = step_generator(seed, stream, step), _reference_generator(seed, stream, step)
            assert new.initial_seed() == old.initial_seed()
            assert torch.equal(new.get_state(), old.get_state())


@pytest.mark.parametrize("seed", [1_844_666, 20240101, 2**63 - 1])
def test_large_seeds_run(seed):
    # these overflowed ("Overflow when unpacking long long") in every train job
    cfg = check_config(base(seeds=[seed]))
    run = run_config(cfg, "mnist", 40, "fixmatch", seed)
    assert run["seed"] == seed
    gen = step_generator(seed, 2, 10)
    assert gen.initial_seed() == ((seed * 1_000_003 + 2) * 10_000_019 + 10) % 2**64
    torch.manual_seed(gen.initial_seed())  # what the trainer does every step
    batch = BatchSampler(torch.arange(50), 8, seed, 1).batch(7)
    assert len(batch) == 8 and len(set(batch.tolist())) == 8
    labels = np.repeat(np.arange(4), 30)
    split = make_split(labels, task="toy", num_classes=4, num_labels=8, val_per_class=5,
                       seed=seed)
    assert len(split.labelled) == 8 and split.seed == seed
    assert make_split(labels, task="toy", num_classes=4, num_labels=8, val_per_class=5,
                      seed=seed) == split


@pytest.mark.slow
def test_large_seed_trains(prepared_mnist, tmp_path):
    from semibench.splits import write_split
    from semibench.tasks import load_prepared
    from semibench.train.loop import train_run

    seed = 20240101
    data = load_prepared(prepared_mnist)
    write_split(make_split(data.train_y, task="mnist", num_classes=10, num_labels=40,
                           val_per_class=20, seed=seed), tmp_path / "split.json")
    train = {"iterations": 2, "eval_every": 2, "batch_size": 4, "uratio": 2, "device": "cpu"}
    cfg = check_config(base(seeds=[seed], tasks={"mnist": {"num_labels": [40], "train": train}}))
    metrics = train_run(run_config(cfg, "mnist", 40, "fixmatch", seed), prepared_mnist,
                        tmp_path / "split.json", tmp_path / "run")
    assert metrics["best"]["iteration"] == 2


def test_other_backbone_drops_task_defaults_it_does_not_take():
    # keywords' cnn_small takes stem_stride, WRN does not: a config cannot remove a task
    # default, so it is dropped, and the run's backbone can be built
    cfg = check_config(base(tasks={"keywords": {"num_labels": [100], "backbone": "wrn_28_2",
                                                "backbone_args": {"widen_factor": 1}}}))
    run = run_config(cfg, "keywords", 100, "supervised", 0)
    assert run["backbone_args"] == {"in_chans": 1, "widen_factor": 1}
    create_backbone(run["backbone"], 10, **run["backbone_args"])
    # the task's own backbone keeps every default
    cfg = check_config(base(tasks={"keywords": {"num_labels": [100]}}))
    assert run_config(cfg, "keywords", 100, "supervised", 0)["backbone_args"] == {
        "in_chans": 1, "stem_stride": 2}


def test_checked_keys_match_what_backbones_and_views_take():
    # every backbone's keys are known (a factory's **kwargs followed to the class it returns)
    for name in BACKBONES:
        assert backbone_arguments(name) is not None, name  # known (a test's may take none)
    assert {"width", "in_chans"} <= backbone_arguments("cnn_small")
    assert {"drop_path_rate", "weights_dir"} <= backbone_arguments("vit_small_patch2_32")
    assert {"trainable_layers", "drop"} <= backbone_arguments("minilm_l6")
    create_backbone("cnn_small", 3, width=4, drop=0.0)
    # every task's defaults pass, and a key outside the checked set is refused by the views
    for name in TASKS:
        task = create_task(name)
        assert set(task.backbone_args) <= backbone_arguments(task.backbone), name
        assert set(task.augment) <= view_arguments(task.domain), name
        check_config({"algorithms": ["supervised"], "tasks": {name: {"augment": {}}}})
    for domain in VIEW_BUILDERS:
        spec = next(create_task(t).augment for t in TASKS if create_task(t).domain == domain)
        with pytest.raises(TypeError):
            build_views(domain, {**spec, "no_such_key": 1})


def _check_config_cli(paths: list[str], cwd) -> list[tuple[int, str, str]]:
    """(exit status, stdout, stderr) of ``semibench check-config PATH`` for each path."""
    results = [subprocess.run([sys.executable, "-m", "semibench.cli", "check-config", path],
                              cwd=cwd, capture_output=True, text=True, timeout=300)
               for path in paths]
    return [(r.returncode, r.stdout, r.stderr) for r in results]


def test_check_config_cli_one_line_errors(tmp_path, repo_root):
    (tmp_path / "bad.yaml").write_text("algorithms: all\nseeds: [0, 1\ntasks: {mnist: {}}\n")
    (tmp_path / "tab.yaml").write_text("tasks:\n  mnist:\n\tnum_labels: [40]\n")
    (tmp_path / "invalid.yaml").write_text(
        "algorithms: all\ntasks: {mnist: {train: {iterations: 60.0}}}\n")
    cases = {
        "missing.yaml": "semibench check-config: error: missing.yaml: no such file",
        "bad.yaml": "bad.yaml:3:6: YAML syntax error: expected ',' or ']', but got ':'",
        "tab.yaml": "tab.yaml:3:1: YAML syntax error: found character '\\t'",
        "invalid.yaml": "semibench check-config: error: invalid.yaml: "
                        "tasks.mnist.train.iterations=60.0: must be an integer",
        str(repo_root / "config" / "config.yaml"): None,
    }
    for (name, message), (status, out, err) in zip(
        cases.items(), _check_config_cli(list(cases), tmp_path), strict=True
    ):
        if message is None:
            assert status == 0 and "valid" in out, err
            continue
        assert status != 0 and out == "", name
        assert len(err.splitlines()) == 1, err  # no traceback
        assert err.startswith(message), err


def test_run_settings_parse_once_into_a_frozen_spec_and_back():
    """The wire format (a dict, what the Snakemake rule passes) and the typed spec the trainer
    gets are one value: parsing and writing back gives the settings unchanged."""
    import dataclasses

    from semibench.spec import Composition, RunSpec
    from semibench.train.config import TrainConfig

    cfg = check_config({"algorithms": ["fixmatch", "fixmatch_crest"], "seeds": [0],
                        "tasks": {"mnist": {"num_labels": [40], "train": {"iterations": 12}},
                                  "mnist_lt": {"variant_of": "mnist", "num_labels": [40],
                                               "train": {"iterations": 12},  # 6 generations
                                               "long_tailed": {"lb_gamma": 2, "ulb_gamma": 2,
                                                               "ulb_head": 100}}}})
    for task, algorithm in [("mnist", "fixmatch"), ("mnist", "fixmatch_crest"),
                            ("mnist_lt", "fixmatch")]:
        run = run_config(cfg, task, 40, algorithm, 0)
        spec = RunSpec.from_settings(run)
        assert spec.to_settings() == run and spec.label == algorithm
        assert isinstance(spec.train, TrainConfig)
    assert spec.registered_task == "mnist" and spec.long_tailed["lb_gamma"] == 2
    crest = RunSpec.from_settings(run_config(cfg, "mnist", 40, "fixmatch_crest", 0))
    assert crest.composition == Composition("fixmatch", "crest")
    with pytest.raises(dataclasses.FrozenInstanceError):
        crest.seed = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        crest.train.iterations = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        crest.algorithm_params["p_cutoff"] = 0.5  # type: ignore[index]
    with pytest.raises(ValueError, match="unknown key"):
        RunSpec.from_settings({**run, "bogus": 1})


@pytest.mark.parametrize(("overrides", "message"), [
    ({"train": {"eval_every": 500, "iterations": 200}},
     "train.eval_every=500 is larger than train.iterations=200 (task mnist, supervised)"),
    ({"train": {"eval_every": 150},
      "tasks": {"mnist": {"num_labels": [40], "train": {"iterations": 100}}}},
     "train.eval_every=150 is larger than tasks.mnist.train.iterations=100 (task mnist, "),
    ({"train": {"iterations": 200}, "algorithm_train": {"fixmatch": {"eval_every": 300}}},
     "algorithm_train.fixmatch.eval_every=300 is larger than train.iterations=200 (task mnist, "
     "fixmatch)"),
    ({"tasks": {"mnist": {"num_labels": [40],
                          "algorithm_train": {"fixmatch": {"eval_every": 10**7}}}}},
     "tasks.mnist.algorithm_train.fixmatch.eval_every=10000000 is larger than the default "
     "iterations="),
])
def test_eval_every_above_iterations_names_both_settings(overrides, message):
    """Resolved per run, as run_config merges train, tasks.<t>.train and algorithm_train."""
    with pytest.raises(ConfigError) as err:
        check_config(base(**overrides))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "set eval_every <= iterations" in str(err.value)


def test_a_default_eval_every_above_a_short_run_is_fine():
    """Only what the config sets is refused: a short run evaluates at its end anyway."""
    cfg = check_config(base(train={"iterations": 50}))
    assert run_config(cfg, "mnist", 40, "fixmatch", 0)["train"]["eval_every"] > 50
    check_config(base(train={"iterations": 50, "eval_every": 50}))
