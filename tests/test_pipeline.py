"""End to end: the whole Snakemake DAG on a tiny config in a temporary directory."""

import csv
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent
TINY_TRAIN = {"iterations": 4, "eval_every": 2, "batch_size": 4, "uratio": 2,
              "eval_batch_size": 256}


def tiny_config(**algorithm_params):
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


def snakemake(workdir: Path, repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(BIN / "snakemake"), "--snakefile", str(repo / "Snakefile"), "--directory",
         str(workdir), "--cores", "2", *args],
        capture_output=True, text=True, env=env, timeout=1200,
    )


def write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def train_jobs(dry_run_output: str) -> list[str]:
    """(task, algorithm, seed) of every train job a dry run lists."""
    return sorted(re.findall(r"wildcards: task=(\w+), num_labels=\d+, algorithm=(\w+), "
                             r"seed=(\d+)", dry_run_output))


@pytest.mark.slow
def test_pipeline_end_to_end(tmp_path, repo_root):
    cfg = write(tmp_path / "tiny.yaml", tiny_config())
    run = snakemake(tmp_path, repo_root, "--configfile", str(cfg))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    html = tmp_path / "reports" / "tiny" / "index.html"
    assert html.exists() and "data:image/png;base64," in html.read_text()
    rows = list(csv.DictReader((tmp_path / "results/tiny/tables/summary.csv").open()))
    got = sorted((r["task"], int(r["num_labels"]), r["algorithm"], int(r["n_seeds"])) for r in rows)
    expected = sorted((t, n, a, 2) for t, n in [("mnist", 20), ("keywords", 50), ("newsgroups", 40)]
                      for a in ["supervised", "fixmatch"])
    assert got == expected
    for r in rows:
        assert 0.0 <= float(r["best_test_error_mean"]) <= 100.0
    for task in ["mnist", "keywords", "newsgroups"]:
        for kind in ("", "_curves", "_pseudolabels", "_per_class"):
            assert (tmp_path / f"results/tiny/figures/{task}{kind}.png").stat().st_size > 1000
    for name in ("paper_image.tex", "paper_text.md", "paper_audio.csv", "statistics.csv",
                 "comparisons.csv", "cost.csv", "curves.csv", "per_class.csv"):
        assert (tmp_path / f"results/tiny/tables/{name}").stat().st_size > 0
    assert "12 of 12 runs" in html.read_text()
    # Snakemake's own report lists the same tables and figures, with captions
    zipped = tmp_path / "snakemake_report.zip"
    report = snakemake(tmp_path, repo_root, "--configfile", str(cfg), "--report", str(zipped))
    assert report.returncode == 0, report.stderr[-3000:]
    names = "\n".join(zipfile.ZipFile(zipped).namelist())
    for name in ("paper_image.csv", "statistics.csv", "cost_pareto.png", "mnist_pseudolabels.png"):
        assert name in names, name
    split = yaml.safe_load((tmp_path / "data/splits/mnist/20/seed0.json").read_text())
    assert len(split["labelled"]) == 20

    # a second run right after the first does nothing
    again = snakemake(tmp_path, repo_root, "--configfile", str(cfg), "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    # one algorithm's hyper-parameter changes: only that algorithm's runs (and the report) rerun
    changed = write(tmp_path / "changed.yaml", tiny_config(fixmatch={"p_cutoff": 0.9}))
    dry = snakemake(tmp_path, repo_root, "--configfile", str(changed), "-n")
    assert dry.returncode == 0, dry.stderr[-2000:]
    jobs = train_jobs(dry.stdout + dry.stderr)
    assert jobs == sorted((t, "fixmatch", s) for t in ["keywords", "mnist", "newsgroups"]
                          for s in ["0", "1"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "change, message",
    [
        ({"tasks": {"mnist": {"num_labels": [25]}}}, "tasks.mnist.num_labels[0]=25: must be a multiple"),
        ({"algorithms": ["fixmatch", "nomatch"]}, "unknown algorithm 'nomatch'"),
        ({"train": {"iterations": 0}}, "train.iterations=0"),
    ],
)
def test_invalid_config_stops_before_any_job(tmp_path, repo_root, change, message):
    cfg = write(tmp_path / "bad.yaml", {**tiny_config(), **change})
    run = snakemake(tmp_path, repo_root, "--configfile", str(cfg))
    assert run.returncode != 0
    lines = [ln for ln in (run.stdout + run.stderr).splitlines() if "SemiBench config error" in ln]
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()


def test_workflow_lint_is_clean(repo_root, tmp_path):
    run = snakemake(tmp_path, repo_root, "--lint")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Congratulations, your workflow is in a good condition" in run.stdout + run.stderr


@pytest.mark.slow
def test_smoke_config_with_all_algorithms(tmp_path, repo_root):
    """`algorithms: all` through the whole DAG (one seed, MNIST, a few iterations)."""
    from semibench.algorithms import ALGORITHMS

    cfg = tiny_config()
    cfg.update(seeds=[0], algorithms="all",
               tasks={"mnist": {"num_labels": [20], "train": TINY_TRAIN}})
    path = write(tmp_path / "all.yaml", cfg)
    run = snakemake(tmp_path, repo_root, "--configfile", str(path))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "results/tiny/tables/summary.csv").open()))
    assert sorted(r["algorithm"] for r in rows) == ALGORITHMS.names()
    assert (tmp_path / "reports" / "tiny" / "index.html").exists()


@pytest.mark.slow
def test_snakemake_killed_by_sigkill_resumes_after_unlock(tmp_path, repo_root):
    """SIGKILL to Snakemake and its jobs (a lost terminal, a node going down) leaves its lock:
    the rerun says to run --unlock, and after that the killed training job resumes from its
    checkpoint and the pipeline completes."""
    import signal
    import time

    cfg = tiny_config()
    cfg.update(benchmark="killed", seeds=[0], algorithms=["supervised"],
               tasks={"mnist": {"num_labels": [20], "train": {
                   **TINY_TRAIN, "iterations": 400, "eval_every": 40, "batch_size": 16}}})
    path = write(tmp_path / "killed.yaml", cfg)
    run_dir = tmp_path / "results/killed/runs/mnist/20/supervised/seed0"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [str(BIN / "snakemake"), "--snakefile", str(repo_root / "Snakefile"), "--directory",
         str(tmp_path), "--cores", "2", "--configfile", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.monotonic() + 600
    while not (run_dir / "checkpoint.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "training never started"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    locked = snakemake(tmp_path, repo_root, "--configfile", str(path))
    assert locked.returncode != 0
    assert "--unlock" in locked.stdout + locked.stderr
    unlock = snakemake(tmp_path, repo_root, "--configfile", str(path), "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    rerun = snakemake(tmp_path, repo_root, "--configfile", str(path), "--rerun-incomplete")
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "resumed from iteration" in (run_dir / "history.log").read_text()
    assert (tmp_path / "reports/killed/index.html").exists()
