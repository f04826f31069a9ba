"""A new user's first hour, as the docs walk it (docs/how-to/own-data.md, run-and-sweep.md,
predict.md), from a working directory that is not the config's folder: declare a grey-scale
image task from their own folders, check it, plan it, run one job, run a two-value sweep of
one hyper-parameter with its report, and predict with the result. No step may end in a
traceback, and nothing is written under the default benchmark's name."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.own_data import write_images

BIN = Path(sys.executable).parent
TRAIN = {"iterations": 4, "eval_every": 2, "batch_size": 4, "uratio": 2, "eval_batch_size": 64}


def semibench(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run([str(BIN / "semibench"), *args], cwd=cwd, capture_output=True,
                         text=True, env=env, timeout=900)
    assert "Traceback" not in run.stdout + run.stderr, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.mark.slow
def test_own_data_check_plan_run_sweep_and_predict_from_another_folder(tmp_path):
    lab = tmp_path / "lab"
    write_images(lab / "my_data" / "flowers")
    config = {  # no benchmark: it is named after the file
        "seeds": [0],
        "algorithms": ["supervised", "fixmatch"],
        "tasks": {"my_flowers": {
            "from_files": {"domain": "image", "train": "my_data/flowers/train",
                           "test": "my_data/flowers/test",
                           "unlabelled": "my_data/flowers/unlabelled", "image_size": 32,
                           "channels": 1, "val_per_class": 2},
            "num_labels": [4], "train": TRAIN}},
        "train": {"device": "cpu"},
        "threads": 1,
    }
    (lab / "flowers.yaml").write_text(yaml.safe_dump(config))
    work = tmp_path / "work"  # the user works elsewhere: paths are read from the file's folder
    work.mkdir()

    check = semibench(work, "check-config", "../lab/flowers.yaml")
    assert check.returncode == 0, check.stderr
    assert "valid; 2 training runs" in check.stdout and "flowers" in check.stdout

    plan = semibench(work, "plan", "--configfile", "../lab/flowers.yaml", "--device", "cpu")
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "my_flowers" in plan.stdout

    one = semibench(work, "run", "my_flowers", "supervised", "--config", "../lab/flowers.yaml",
                    "--cores", "2")
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    run_dir = work / "results/run/runs/my_flowers/4/supervised/seed0"
    assert (run_dir / "metrics.json").exists()
    assert "test error" in one.stdout

    sweep = semibench(work, "run", "my_flowers", "fixmatch", "--config", "../lab/flowers.yaml",
                      "--set", "algorithm_params.fixmatch.p_cutoff=[0.9, 0.95]", "--report",
                      "--cores", "2")
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    for value in ("0.9", "0.95"):
        assert (work / f"results/run/runs/my_flowers/4/fixmatch,p_cutoff={value}/seed0"
                       "/metrics.json").exists()
    rows = list(csv.DictReader((work / "results/run/tables/sensitivity.csv").open()))
    assert [(r["parameter"], r["value"]) for r in rows] == [("p_cutoff", "0.9"),
                                                          ("p_cutoff", "0.95")]
    assert (work / "results/run/figures/my_flowers_sensitivity.png").stat().st_size > 1000
    assert "my_flowers_sensitivity" in (work / "reports/run/index.html").read_text()

    images = sorted((lab / "my_data/flowers/test").rglob("*.png"))
    predicted = semibench(work, "predict", "--run", str(run_dir.relative_to(work)), "--input",
                          *map(str, images[:2]))
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.strip().splitlines()
    assert lines[0].startswith("input") and len(lines) == 3

    # the default benchmark's outputs were never touched
    assert not (work / "results/offline").exists() and not (work / "reports/offline").exists()
