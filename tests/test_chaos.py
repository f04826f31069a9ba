"""Chaos: a training job killed with SIGKILL at random moments, and rerun each time, ends with
the metrics of an uninterrupted run, no temporary files, and never a wrong metrics.json.

Kills land at random moments, while a checkpoint is being written (the temporary file is
there), while the final metrics are being written, and during start-up.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from semibench.config import check_config, run_config
from semibench.splits import make_split, write_split
from semibench.tasks import load_prepared
from tests.helpers.runs import train

pytestmark = pytest.mark.slow

TRAIN = train(iterations=24, eval_every=2, batch_size=8)


def _command(run: dict, prepared: Path, split: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "semibench.cli", "train", "--run-config", json.dumps(run),
            "--prepared", str(prepared), "--split", str(split), "--out-dir", str(out),
            "--threads", "1", "--backtranslations", ""]


def _outcome(path: Path) -> tuple:
    metrics = json.loads(path.read_text())
    return metrics["best"], metrics["last"], metrics["inputs"]


def _curve(path: Path) -> list[str]:
    return [row.rsplit(",", 1)[0] for row in path.read_text().splitlines()]  # minus elapsed_s


def _wait_for(proc: subprocess.Popen, ready, timeout: float = 120.0) -> bool:
    """Poll fast until ``ready()``; False if the process ended first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if ready():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.0005)
    return False


#: FixMatch, and CReST+ (2 generations: a fresh model, a new labelled set and a milestone at
#: iteration 12, so kills also land around a generation boundary)
@pytest.fixture(scope="module")
def small_mnist(prepared_mnist, tmp_path_factory) -> Path:
    """MNIST cut to 200 training and 50 test images a class: each of the many starts below
    evaluates every 2 iterations, on 500 test images instead of 10,000."""
    import numpy as np

    from semibench.tasks import create_task
    from semibench.tasks.base import write_prepared

    data = load_prepared(prepared_mnist)
    train = np.concatenate([np.flatnonzero(data.train_y == c)[:200] for c in range(10)])
    test = np.concatenate([np.flatnonzero(data.test_y == c)[:50] for c in range(10)])
    out = tmp_path_factory.mktemp("small_mnist") / "prepared"
    write_prepared(out, task=create_task("mnist"), train_x=data.train_x[train],
                   train_y=data.train_y[train], test_x=data.test_x[test],
                   test_y=data.test_y[test], raw_checksums={})
    return out


@pytest.mark.parametrize("algorithm", ["fixmatch", "fixmatch_crestplus"])
def test_sigkill_at_random_moments(algorithm, small_mnist, tmp_path):
    prepared_mnist = small_mnist
    data = load_prepared(prepared_mnist)
    split = tmp_path / "split.json"
    write_split(make_split(data.train_y, task="mnist", num_classes=10, num_labels=40,
                           val_per_class=20, seed=0), split)
    cfg = check_config({"algorithms": [algorithm], "seeds": [0],
                        "imbalance_params": {"crestplus": {"num_gens": 2}},
                        "tasks": {"mnist": {"num_labels": [40], "train": TRAIN}}})
    run = run_config(cfg, "mnist", 40, algorithm, 0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    reference = tmp_path / "reference"
    done = subprocess.run(_command(run, prepared_mnist, split, reference), env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]

    out = tmp_path / "chaos"
    rng = random.Random(20261201)
    # metrics are written once, at the end: those kills come last (each rerun resumes there)
    plan = ["checkpoint write", "random", "start-up"] * 2 + ["metrics write"] * 2
    kills: list[str] = []
    for _attempt in range(40):
        moment = plan[len(kills)] if len(kills) < len(plan) else "none"
        (out / "metrics.json").unlink(missing_ok=True)  # Snakemake removes a failed job's output
        proc = subprocess.Popen(_command(run, prepared_mnist, split, out), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if moment == "checkpoint write":
            hit = _wait_for(proc, lambda: any(out.glob(".checkpoint.pt.*.tmp")))
        elif moment == "metrics write":
            hit = _wait_for(proc, lambda: any(out.glob(".metrics.json.*.tmp"))
                            or any(out.glob(".curve.csv.*.tmp")))
        elif moment == "random":  # somewhere in training, once this start has got going
            hit = _wait_for(proc, lambda: any(out.glob(".checkpoint.pt.*.tmp")))
            time.sleep(rng.uniform(0.0, 0.5))
            hit = hit and proc.poll() is None
        elif moment == "start-up":
            time.sleep(rng.uniform(0.2, 3.0))
            hit = proc.poll() is None
        else:
            hit = False
        if not hit:
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err[-2000:]
            if moment == "none":
                break
            continue  # the moment passed before it could be caught: try it again
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        kills.append(moment)
        metrics = out / "metrics.json"
        # a killed job never leaves a metrics.json that is not the run's true result
        assert not metrics.exists() or _outcome(metrics) == _outcome(reference / "metrics.json")
    else:
        pytest.fail(f"no clean end after 40 starts: {kills}")

    print("kills:", kills)
    assert len(kills) == len(plan), kills
    assert {"checkpoint write", "metrics write", "random", "start-up"} <= set(kills), kills
    assert _outcome(out / "metrics.json") == _outcome(reference / "metrics.json")
    assert _curve(out / "curve.csv") == _curve(reference / "curve.csv")
    left = sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp") or
                  p.name.startswith("checkpoint"))
    assert left == [], left
