"""The real-benchmark configs: valid, and a dry run lists one train job per
task x label budget x algorithm x seed (3 seeds). Timing is measured in benchmarks/."""

import re

import pytest
import yaml

from semibench.algorithms import ALGORITHMS
from semibench.config import check_config, run_config, run_grid
from tests.test_pipeline import snakemake

USB_TASKS = {
    "cifar100": 2, "stl10": 2, "eurosat": 2, "tissuemnist": 2, "semi_aves": 1,
    "imdb": 2, "ag_news": 2, "amazon_review": 2, "yahoo_answers": 2, "yelp_review": 2,
    "gtzan": 2, "urbansound8k": 2, "superb_ks": 2, "fsdnoisy18k": 1, "esc50": 2,
}  # fmt: skip
CLASSIC_TASKS = {"cifar10": 3, "cifar100": 3, "svhn": 3, "stl10": 3}


@pytest.mark.parametrize("name, tasks", [("usb", USB_TASKS), ("classic_cv", CLASSIC_TASKS)])
def test_config_grid(repo_root, name, tasks):
    cfg = check_config(yaml.safe_load((repo_root / "config" / f"{name}.yaml").read_text()))
    assert cfg["seeds"] == [0, 1, 2]
    grid = run_grid(cfg)
    assert len(grid) == sum(tasks.values()) * len(ALGORITHMS.names()) * 3
    assert {t for t, *_ in grid} == set(tasks)
    for task, n, alg, seed in grid[:: max(1, len(grid) // 50)]:  # every run resolves
        run = run_config(cfg, task, n, alg, seed)
        assert run["train"]["iterations"] > 0


def test_classic_settings(repo_root):
    cfg = check_config(yaml.safe_load((repo_root / "config" / "classic_cv.yaml").read_text()))
    run = run_config(cfg, "cifar100", 400, "fixmatch", 0)
    assert run["backbone"] == "wrn_28_2" and run["train"]["uratio"] == 7
    assert run["train"]["iterations"] == 2**20 and run["train"]["weight_decay"] == 1e-3
    assert run_config(cfg, "cifar100", 400, "mixmatch", 0)["train"]["uratio"] == 1
    assert run_config(cfg, "stl10", 40, "fixmatch", 0)["backbone"] == "wrn_37_2"


@pytest.mark.slow
@pytest.mark.parametrize("name, tasks", [("usb", USB_TASKS), ("classic_cv", CLASSIC_TASKS)])
def test_dry_run_lists_every_train_job(repo_root, tmp_path, name, tasks):
    run = snakemake(tmp_path, repo_root, "-n", "--quiet", "rules", "--configfile",
                    str(repo_root / "config" / f"{name}.yaml"))
    assert run.returncode == 0, run.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", run.stdout + run.stderr, re.M))
    assert int(counts["train"]) == sum(tasks.values()) * len(ALGORITHMS.names()) * 3
    assert int(counts["fetch"]) == len(tasks)
    if name == "usb":  # the five NLP tasks get their back-translations
        assert int(counts["backtranslate"]) == 5
