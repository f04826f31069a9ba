"""``semibench status``: a sweep's state from fake run directories, job logs and Snakemake
markers, written as the trainer and Snakemake write them."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from semibench.cli import USER_COMMANDS, main
from semibench.cli import status as st
from semibench.report import layout
from semibench.train.checkpoint import CheckpointStore

BENCHMARK = "watch"
CONFIG = {"benchmark": BENCHMARK, "seeds": [0, 1], "algorithms": ["supervised", "fixmatch"],
          "tasks": {"mnist": {"num_labels": [40]}, "keywords": {"num_labels": [100]}},
          "train": {"device": "cpu"}}


def snakemake_marker_path(directory: Path, key: str) -> Path:
    """Where Snakemake's file persistence puts a record of ``key`` (its own function)."""
    from snakemake.persistence.file import FilePersistence

    class _Stub:
        def _fetch_max_len(self, subject):
            return 255

    return Path(FilePersistence._record_path(_Stub(), str(directory), key))


def mark_started(root: Path, key: str, job_id: str | None = None) -> None:
    """What Snakemake does when it starts a job: an incomplete marker per output."""
    path = snakemake_marker_path(root / ".snakemake" / "incomplete", key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"external_jobid": job_id}))


def lock_outputs(root: Path, keys: list[str]) -> None:
    """What a running Snakemake holds: ``.snakemake/locks/0.output.lock``, one path a line."""
    locks = root / ".snakemake" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    (locks / "0.output.lock").write_text("\n".join(keys) + "\n")
    (locks / "0.input.lock").write_text("data/prepared/mnist/meta.json\n")


def run_dir(root: Path, task: str, n: int, alg: str, seed: int) -> Path:
    path = root / layout.run_dir(BENCHMARK, task, n, alg, seed)
    path.mkdir(parents=True, exist_ok=True)
    return path


def key(task: str, n: int, alg: str, seed: int) -> str:
    return f"{layout.run_dir(BENCHMARK, task, n, alg, seed)}/metrics.json"


def finish(root: Path, task: str, n: int, alg: str, seed: int, wall: float,
           job_s: float | None = None, device: str = "cpu") -> None:
    """A finished run: metrics.json and, as Snakemake writes it, the benchmark file."""
    out = run_dir(root, task, n, alg, seed)
    (out / "metrics.json").write_text(json.dumps({
        "task": task, "num_labels": n, "algorithm": alg, "seed": seed, "wall_time_s": wall,
        "device": device, "best": {}, "last": {}, "config": {"train": {}}}))
    if job_s is not None:
        tsv = root / layout.train_benchmark(BENCHMARK, task, n, alg, seed)
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load"
                       f"\tcpu_time\n{job_s:.2f}\t0:01:00\t900\t3000\t500\t600\t0\t0\t95\t50\n")


def checkpoint(root: Path, task: str, n: int, alg: str, seed: int, done: int, total: int,
               elapsed: float) -> None:
    """A checkpoint as the trainer writes it (with its record)."""
    CheckpointStore(run_dir(root, task, n, alg, seed)).save({
        "next_iteration": done, "elapsed_s": elapsed, "config": {"train": {"iterations": total}},
        "model": {"w": torch.zeros(2)}})


def job_log(root: Path, task: str, n: int, alg: str, seed: int, text: str) -> None:
    path = root / st.TRAIN_LOG.format(benchmark=BENCHMARK, task=task, num_labels=n,
                                      algorithm=alg, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture()
def sweep(tmp_path) -> Path:
    """Eight runs in every state (the other four not started)."""
    root = tmp_path
    finish(root, "mnist", 40, "supervised", 0, wall=100.0, job_s=110.0)
    finish(root, "mnist", 40, "supervised", 1, wall=120.0, job_s=130.0)
    finish(root, "mnist", 40, "fixmatch", 0, wall=300.0)  # no benchmark file: wall_time_s
    # running: started by the Snakemake that holds the directory, half-way
    checkpoint(root, "mnist", 40, "fixmatch", 1, done=300, total=600, elapsed=140.0)
    mark_started(root, key("mnist", 40, "fixmatch", 1), job_id="4242")
    # running: queued on the cluster, no file yet
    mark_started(root, key("keywords", 100, "fixmatch", 0), job_id="4243")
    lock_outputs(root, [key(*job) for job in (("mnist", 40, "fixmatch", 1),
                                              ("keywords", 100, "fixmatch", 0),
                                              ("keywords", 100, "fixmatch", 1))])
    # interrupted: a time limit stopped it (Snakemake then removed its marker)
    checkpoint(root, "keywords", 100, "supervised", 0, done=750, total=1000, elapsed=60.0)
    job_log(root, "keywords", 100, "supervised", 0, "loading\r  5%|#  | 50/1000\r 75%|###  "
            "| 750/1000\nsemibench train: stopped by signal 15 after iteration 750 of 1000; "
            "checkpoint written, a rerun resumes there\n")
    # failed: the log's last line is the error, after a progress bar
    job_log(root, "keywords", 100, "supervised", 1, "start\r 10%|#   | 100/1000\rsemibench "
            "train: error: loss is NaN at step 120 (lower train.lr)\n\n")
    return root


def test_every_state_is_told_from_the_files(sweep):
    config = {**CONFIG}
    from semibench.config import check_config

    result = st.sweep_status(check_config(config), "c.yaml", sweep)
    states = {r.name: r.state for r in result.runs}
    assert states == {
        "mnist/40/supervised/seed0": "done", "mnist/40/supervised/seed1": "done",
        "mnist/40/fixmatch/seed0": "done", "mnist/40/fixmatch/seed1": "running",
        "keywords/100/supervised/seed0": "interrupted",
        "keywords/100/supervised/seed1": "failed",
        "keywords/100/fixmatch/seed0": "running",
        "keywords/100/fixmatch/seed1": "not started"}
    runs = {r.name: r for r in result.runs}
    assert runs["mnist/40/supervised/seed0"].seconds == 110.0  # the whole job's time
    assert runs["mnist/40/fixmatch/seed0"].seconds == 300.0  # no benchmark file
    assert runs["mnist/40/fixmatch/seed1"].progress == (300, 600)
    assert runs["mnist/40/fixmatch/seed1"].job_id == "4242"
    assert runs["keywords/100/supervised/seed1"].last_line == (
        "semibench train: error: loss is NaN at step 120 (lower train.lr)")

    text = st.format_status(result)
    assert "done 3 (37.5 %), running 2, interrupted 1, failed 1, not started 1" in text
    assert "| mnist | fixmatch | 2 | 1 | 1 | 0 | 0 | 0 | 0.12 |" in text  # 300 s + 140 s
    assert ("keywords/100/supervised/seed1: semibench train: error: loss is NaN at step 120 "
            "(lower train.lr)") in text
    assert "mnist/40/fixmatch/seed1: iteration 300 of 600 (50 %); job 4242" in text
    assert "keywords/100/fixmatch/seed0: queued or starting (no checkpoint yet); job 4243" in text
    assert "keywords/100/supervised/seed0: iteration 750 of 1,000 (75 %); log: semibench " \
        "train: stopped by signal 15" in text
    assert "Snakemake holds this directory since" in text
    # spent: 110 + 130 + 300 finished, 140 + 60 up to the last checkpoints
    assert ("device-hours spent: 0.21: 0.15 in 3 finished runs (2 timed by Snakemake's "
            "benchmark files, 1 by metrics.json) + 0.06 in 2 unfinished runs up to their last "
            "checkpoint; on cpu (3)") in text
    # left: fixmatch/mnist seed1 half of 300 s; keywords: the overall median 130 s for the
    # interrupted quarter, the queued and the not-started run
    assert result.estimate.seconds == pytest.approx(150 + 130 * 0.25 + 130 + 130)
    assert result.estimate.basis == {"same task and algorithm": 1, "all finished runs": 3}
    assert "ETA: 0.12 device-hours left for 4 runs" in text
    assert "at the 2 jobs running now, about 4 min; not counted: 1 failed" in text


def test_without_snakemake_a_marked_run_is_interrupted(sweep):
    """The Snakemake that started a job is gone (killed): its marker stays, no lock."""
    import shutil

    from semibench.config import check_config

    shutil.rmtree(sweep / ".snakemake" / "locks")
    result = st.sweep_status(check_config(dict(CONFIG)), "c.yaml", sweep)
    states = {r.name: r.state for r in result.runs}
    assert states["mnist/40/fixmatch/seed1"] == "interrupted"
    assert states["keywords/100/fixmatch/seed0"] == "interrupted"
    assert "holds this directory" not in st.format_status(result)


def test_a_live_trainer_on_this_machine_is_running(tmp_path):
    """The trainer's lock names its process: a live semibench process is a running run, a
    dead one is not."""
    from semibench.config import check_config

    out = run_dir(tmp_path, "mnist", 40, "supervised", 0)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "semibench"])
    try:
        (out / ".lock").write_text(f"pid {live.pid} on {platform.node()}\n")
        (out / "history.log").write_text("2025-01-01 00:00:00 started\n")
        result = st.sweep_status(check_config(dict(CONFIG)), "c.yaml", tmp_path)
        assert result.runs[0].state == "running"
    finally:
        live.kill()
        live.wait()
    result = st.sweep_status(check_config(dict(CONFIG)), "c.yaml", tmp_path)
    assert result.runs[0].state == "interrupted"  # a history, no live trainer, no marker
    (out / ".lock").write_text(f"pid {os.getpid()} on another-host\n")
    assert st.sweep_status(check_config(dict(CONFIG)), "c.yaml", tmp_path).runs[0].state \
        == "interrupted"


def test_snakemakes_long_marker_names_are_read(tmp_path):
    """A path longer than a file name allows is cut into folders by Snakemake."""
    long = f"results/{'x' * 300}/runs/mnist/40/fixmatch,p_cutoff=0.9/seed0/metrics.json"
    mark_started(tmp_path, long, job_id="7")
    mark_started(tmp_path, "results/a/runs/mnist/40/fixmatch/seed0/metrics.json")
    assert len(snakemake_marker_path(tmp_path, long).relative_to(tmp_path).parts) > 1
    found = st.read_snakemake(tmp_path / ".snakemake")
    assert set(found.incomplete) == {long, "results/a/runs/mnist/40/fixmatch/seed0/metrics.json"}
    assert st._external_job_id(found.incomplete[long]) == "7"


def test_before_any_run_finished_the_eta_is_the_planners(tmp_path, capsys):
    config = tmp_path / "watch.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "tasks": {"mnist": {"num_labels": [40]}}}))
    assert main(["status", "--configfile", str(config), "--directory", str(tmp_path),
                 "--json", str(tmp_path / "status.json")]) == 0
    out = capsys.readouterr().out
    assert "done 0 (0.0 %), running 0, interrupted 0, failed 0, not started 4" in out
    assert "device-hours spent: none yet" in out
    assert "device-hours left for 4 runs (estimated from: planner 4 on cpu)" in out
    saved = json.loads((tmp_path / "status.json").read_text())
    assert saved["counts"]["not started"] == 4 and len(saved["runs"]) == 4
    assert saved["seconds_left"] > 0

    gpu = tmp_path / "gpu.yaml"
    gpu.write_text(yaml.safe_dump({**CONFIG, "gpus_per_job": 1,
                                   "tasks": {"mnist": {"num_labels": [40]}}}))
    assert main(["status", "--configfile", str(gpu), "--directory", str(tmp_path)]) == 0
    assert ("ETA: unknown: no run has finished yet and no planner estimate (`semibench status "
            "--device h100` plans the 4 runs on that device)") in capsys.readouterr().out


def test_status_is_a_user_command_and_bad_input_is_one_line(tmp_path, capsys):
    assert "status" in USER_COMMANDS
    with pytest.raises(SystemExit) as err:
        main(["status", "--configfile", str(tmp_path / "missing.yaml")])
    assert "missing.yaml" in str(err.value) and "\n" not in str(err.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: [0]\ntasks: {nosuchtask: {num_labels: [4]}}\n")
    with pytest.raises(SystemExit) as err:
        main(["status", "--configfile", str(bad)])
    assert str(err.value).startswith(f"semibench status: error: {bad}: ")


def test_by_task_groups_the_rows(sweep, capsys):
    config = sweep / "c.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    started = time.perf_counter()
    assert main(["status", "--configfile", str(config), "--directory", str(sweep), "--by",
                 "task", "--show", "0"]) == 0
    assert time.perf_counter() - started < 60
    out = capsys.readouterr().out
    assert "| task | runs | done | running | interrupted | failed | not started | " \
        "device-hours |" in out
    assert "| keywords | 4 | 0 | 1 | 1 | 1 | 1 | 0.02 |" in out
    assert "... and 1 more (--show 1 lists them)" in out


def test_metrics_fields_are_read_without_parsing_the_file():
    """The trainer's metrics.json (indent 2, sorted keys: config.train.device comes first)
    and one written any other way give the same fields."""
    metrics = {"config": {"train": {"device": "auto"}}, "device": 'NVIDIA "H100"',
               "wall_time_s": 12.5, "best": {"wall_time_s": 1}}
    assert st._metrics_fields(json.dumps(metrics, indent=2, sort_keys=True) + "\n") == (
        'NVIDIA "H100"', 12.5)
    assert st._metrics_fields(json.dumps(metrics)) == ('NVIDIA "H100"', 12.5)
    assert st._metrics_fields("{not json") == ("", None)
