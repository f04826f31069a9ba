"""The one full pipeline of the suite, run once per session (conftest's ``combined_pipeline``):
a config that combines what the pipeline tests check, so that each adds no Snakemake run of
its own and checks reruns with dry runs:

* three domains (MNIST, the keywords audio task, 20 Newsgroups with the real MiniLM), two
  algorithms, two seeds: the report, its tables and figures and Snakemake's own report;
* a variant (``mnist_lt``: a long-tailed setting of MNIST, with an imbalance method), reported
  under its own name and reading MNIST's data;
* an own-data task (``my_flowers``, an ImageFolder layout) trained by a plugin algorithm
  (``confmatch``, from examples/) beside two registered ones.
"""

from __future__ import annotations

import copy
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.helpers.own_data import write_images
from tests.helpers.workflow import REPO, snakemake, write

TINY_TRAIN = {"iterations": 4, "eval_every": 2, "batch_size": 4, "uratio": 2,
              "eval_batch_size": 256}
PLUGIN = REPO / "examples/my_algorithm/confmatch.py"
LONG_TAILED = {"lb_gamma": 5, "ulb_gamma": 5, "ulb_head": 100}


def tiny_config(**algorithm_params) -> dict:
    """Three registered tasks, one per domain: supervised and FixMatch, two seeds."""
    return {
        "benchmark": "tiny",
        "seeds": [0, 1],
        "algorithms": ["supervised", "fixmatch"],
        "tasks": {
            "mnist": {"num_labels": [20], "train": TINY_TRAIN},
            "keywords": {"num_labels": [50], "train": TINY_TRAIN},
            "newsgroups": {
                "num_labels": [40],
                "backbone_args": {"max_length": 16},
                "train": {**TINY_TRAIN, "eval_batch_size": 128},
            },
        },
        "algorithm_params": algorithm_params,
        "train": {"device": "cpu"},
        "threads": 1,
    }


def combined_config(**algorithm_params) -> dict:
    """``tiny_config`` plus a long-tailed variant and an own-data task with a plugin."""
    cfg = tiny_config(**algorithm_params)
    images = yaml.safe_load((REPO / "config/examples/images.yaml").read_text())
    flowers = copy.deepcopy(images["tasks"]["my_flowers"])
    flowers.update(train={"iterations": 4, "eval_every": 2, "batch_size": 4, "uratio": 2,
                          "eval_batch_size": 64},
                   algorithms=["supervised", "fixmatch", "confmatch"])
    cfg["tasks"].update(
        mnist_lt={"variant_of": "mnist", "num_labels": [20], "train": TINY_TRAIN,
                  "long_tailed": LONG_TAILED, "algorithms": ["fixmatch", "fixmatch_debiaspl"]},
        my_flowers=flowers)
    cfg.update(benchmark="combined", plugins=["lab/confmatch.py"],
               metrics=["error", "balanced_error"], published_reference=["classic_cv_imb"])
    return cfg


#: (task, number of labels, algorithms) of the combined config; two seeds each
RUNS = [("mnist", 20, ["supervised", "fixmatch"]), ("keywords", 50, ["supervised", "fixmatch"]),
        ("newsgroups", 40, ["supervised", "fixmatch"]),
        ("mnist_lt", 20, ["fixmatch", "fixmatch_debiaspl"]),
        ("my_flowers", 4, ["supervised", "fixmatch", "confmatch"])]


@dataclass
class Pipeline:
    workdir: Path
    config: dict
    configfile: Path
    run: subprocess.CompletedProcess

    def results(self, *parts: str) -> Path:
        return self.workdir.joinpath("results", self.config["benchmark"], *parts)

    def dry_run(self, configfile: Path | None = None) -> subprocess.CompletedProcess:
        return snakemake(self.workdir, "--configfile", str(configfile or self.configfile), "-n")


def run_combined(workdir: Path) -> Pipeline:
    """Lay out the own data and the plugin in ``workdir`` and run the whole DAG there."""
    write_images(workdir / "my_data/flowers")
    (workdir / "lab").mkdir()
    (workdir / "lab/confmatch.py").write_text(PLUGIN.read_text())
    config = combined_config()
    configfile = write(workdir / "combined.yaml", config)
    run = snakemake(workdir, "--configfile", str(configfile))
    return Pipeline(workdir, config, configfile, run)
