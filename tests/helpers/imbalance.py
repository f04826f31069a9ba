"""A long-tailed MNIST-format problem for the imbalance tests: synthetic data, a long-tailed
split written by `semibench split`, and the settings of a short composed run on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semibench.cli import main
from semibench.config import check_config, run_config
from semibench.tasks import create_task
from semibench.tasks.base import write_prepared

TINY = {"iterations": 4, "eval_every": 2, "batch_size": 4, "uratio": 2, "eval_batch_size": 64,
        "device": "cpu"}
LONG_TAILED = {"lb_gamma": 4, "ulb_gamma": 4, "ulb_head": 12}
#: state that changes within a few steps: DARP refines at once, Adsh, SAW and DASO update
#: every 2
FAST = {"darp": {"warmup": 0.0, "num_refine_iter": 3}, "adsh": {"update_every": 2},
        "saw": {"update_every": 2}, "daso": {"num_pretrain_iter": 2, "num_pl_dist_iter": 2},
        "tras": {"warmup_iterations": 2}, "crest": {"num_gens": 2},
        "crestplus": {"num_gens": 2}, "cossl": {"tfe_warm_steps": 30}}


def write_lt_data(root: Path) -> tuple[Path, Path]:
    """Synthetic MNIST-format data (45 train and 2 test images a class, a bright bar whose row
    is the class) and a long-tailed split of 8 labels written by `semibench split`."""
    task = create_task("mnist")
    rng = np.random.default_rng(0)

    def images(per_class):
        y = np.repeat(np.arange(10), per_class)
        x = rng.integers(0, 60, size=(len(y), 1, 28, 28)).astype(np.uint8)
        for c in range(10):
            x[y == c, 0, 2 + 2 * c: 4 + 2 * c, 4:24] = 250
        return x, y

    (train_x, train_y), (test_x, test_y) = images(45), images(2)
    write_prepared(root / "prepared", task=task, train_x=train_x, train_y=train_y,
                   test_x=test_x, test_y=test_y, raw_checksums={})
    cfg = check_config({"algorithms": ["fixmatch"], "seeds": [0],
                        "tasks": {"mnist": {"num_labels": [8], "long_tailed": LONG_TAILED}}})
    tag = run_config(cfg, "mnist", 8, "fixmatch", 0)["split_tag"]
    assert tag == "lt_l4_u4_m12"
    main(["split", "--task", "mnist", "--prepared", str(root / "prepared"), "--num-labels", "8",
          "--seed", "0", "--out", str(root / "split.json"), "--long-tailed", tag])
    return root / "prepared", root / "split.json"


def lt_settings(algorithm: str, **train) -> dict:
    """A short run of ``algorithm`` (e.g. fixmatch_darp) on the long-tailed split."""
    cfg = check_config({"algorithms": [algorithm], "seeds": [0], "imbalance_params": FAST,
                        "tasks": {"mnist": {"num_labels": [8], "long_tailed": LONG_TAILED,
                                            "train": {**TINY, **train}}}})
    return run_config(cfg, "mnist", 8, algorithm, 0)
