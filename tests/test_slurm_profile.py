"""profiles/slurm against a real SLURM scheduler (tests/slurm/cluster.sh starts one).

The profile used here is the project's profiles/slurm/config.yaml, changed only where the small
test node needs it (partition, memory, CPUs, status-check delay, jobs), so that a key the
executor plugin rejects or a wrong resource fails these tests. The test node has 2 cores and
one GPU that SLURM schedules but that does not exist (gres backed by /dev/null): GPU requests
are checked, nothing runs on it.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers.pipeline import TINY_TRAIN, tiny_config
from tests.helpers.workflow import write

REPO = Path(__file__).resolve().parents[1]
CLUSTER_SH = REPO / "tests" / "slurm" / "cluster.sh"
PROJECT_PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
JOBCOMP_LOG = Path("/var/log/slurm/jobcomp.log")
BIN = Path(sys.executable).parent
CANNOT_HOST = 77  # cluster.sh: this machine cannot host a test cluster (see the script)
JOBS = 2
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.")

# the cluster is machine-wide and counted (``_users``), so workers may share it: the pipeline and
# the failing-job tests share one worker and its working directory (prepared data), and the
# time-limit test, the longest, runs beside them from the suite's start (conftest's FIRST_GROUPS)
pytestmark = [pytest.mark.slurm, pytest.mark.slow]
SHARED_WORKDIR = pytest.mark.xdist_group("slurm")


@dataclass(frozen=True)
class Cluster:
    partition: str
    cpus: int
    mem_mb: int


def _cluster_sh(command: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLUSTER_SH), command], capture_output=True, text=True,
                          timeout=600)


#: how many test sessions (xdist workers, or two pytest runs on one machine) use the one
#: machine-wide cluster; the last to leave stops it (a worker that started it must not stop it
#: under another's running job)
USERS_FILE = Path(tempfile.gettempdir()) / "semibench-test-slurm.users"


@contextlib.contextmanager
def _users() -> Iterator[list[int]]:
    """[users, started by a test session], read and written under an exclusive lock (also held
    while starting or stopping the cluster, so two sessions never do either at once)."""
    with open(USERS_FILE, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        fields = handle.read().split()
        state = [int(fields[0]) if fields else 0, int(fields[1]) if len(fields) > 1 else 0]
        try:
            yield state
        finally:  # a skip or failure inside still records what it changed
            handle.seek(0)
            handle.truncate()
            handle.write(f"{state[0]} {state[1]}")


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[Cluster]:
    """A running single-node cluster, shared by every session on the machine; the last user
    stops it."""
    if os.geteuid() != 0:
        pytest.skip("the SLURM test cluster needs root (it installs and starts daemons)")
    with _users() as users:
        if _cluster_sh("status").returncode != 0:
            users[:] = [0, 1]  # a count left by a killed session: nobody holds a stopped cluster
            start = _cluster_sh("start")
            if start.returncode == CANNOT_HOST:
                reason = start.stderr.strip().splitlines()[-1] if start.stderr.strip() else "?"
                print(f"\nskipping SLURM tests: {start.stderr}", file=sys.stderr)
                users[:] = [0, 0]
                pytest.skip(f"no SLURM test cluster on this machine: {reason}")
            if start.returncode != 0:
                _cluster_sh("stop")  # what did start
                users[:] = [0, 0]
                pytest.fail(f"cluster.sh start failed:\n{start.stdout}{start.stderr}")
        users[0] += 1
    try:
        info = subprocess.run(["sinfo", "-h", "-o", "%P %c %m"], capture_output=True,
                              text=True, check=True).stdout.split()
        # the default partition carries a '*'
        partition, cpus, mem = next(
            info[i:i + 3] for i in range(0, len(info), 3) if info[i].endswith("*"))
        yield Cluster(partition.rstrip("*"), int(cpus), int(mem.rstrip("+")))
    finally:
        with _users() as users:
            users[0] = max(0, users[0] - 1)
            if users[0] == 0 and users[1]:  # never a cluster that a test did not start
                users[1] = 0
                stop = _cluster_sh("stop")
                if stop.returncode != 0:
                    print(f"cluster.sh stop failed:\n{stop.stderr}", file=sys.stderr)


def _fit(resources: dict, cluster: Cluster) -> dict:
    """Resources that let JOBS jobs run at once on the test node; the others untouched."""
    out = dict(resources)
    if "slurm_partition" in out:
        out["slurm_partition"] = cluster.partition
    if "cpus_per_task" in out:
        out["cpus_per_task"] = min(int(out["cpus_per_task"]), max(1, cluster.cpus // JOBS))
    if "mem_mb" in out:
        out["mem_mb"] = min(int(out["mem_mb"]), cluster.mem_mb // JOBS)
    return out


def make_profile(directory: Path, cluster: Cluster) -> Path:
    """The project's profile, adapted only where the small test node needs it."""
    profile = yaml.safe_load(PROJECT_PROFILE.read_text())
    assert profile["executor"] == "slurm"
    profile["jobs"] = JOBS
    profile["default-resources"] = _fit(profile["default-resources"], cluster)
    profile["set-resources"] = {rule: _fit(res, cluster)
                                for rule, res in profile.get("set-resources", {}).items()}
    # the plugin's first status check comes after 40 s by default (MinJobAge=300 >= 3 x 2 s)
    profile["slurm-init-seconds-before-status-checks"] = 2
    directory.mkdir()
    write(directory / "config.yaml", profile)
    return directory


def run_snakemake(workdir: Path, profile: Path, configfile: Path,
                  *targets: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        # the targets first: --configfile takes every word up to the next option
        [str(BIN / "snakemake"), *targets, "--snakefile", str(REPO / "Snakefile"), "--profile",
         str(profile), "--configfile", str(configfile)],
        cwd=workdir, capture_output=True, text=True, env=env, timeout=1100,
    )


def submissions(output: str) -> list[tuple[str, str]]:
    """(rule, SLURM job id) of every job the executor submitted, from its log lines."""
    out = []
    for job_id, log in SUBMITTED.findall(output):
        rule = re.search(r"slurm_logs/rule_(\w+?)/", log)
        assert rule, log
        out.append((rule.group(1), job_id))
    return out


def jobcomp_records(job_ids: set[str]) -> dict[str, dict[str, str]]:
    """SLURM's own record (jobcomp/filetxt) of each finished job, by job id."""
    records = {}
    for line in JOBCOMP_LOG.read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if fields.get("JobId") in job_ids:
            records[fields["JobId"]] = fields  # the latest record wins
    return records


def explain(run: subprocess.CompletedProcess, workdir: Path) -> str:
    logs = sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    tails = "".join(f"\n--- {p}\n{p.read_text()[-1500:]}" for p in logs[-3:])
    return f"{run.stdout[-4000:]}\n{run.stderr[-6000:]}{tails}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """One working directory for this module's runs: the later ones reuse the prepared data
    and splits, so that only their own jobs wait for SLURM's status polling."""
    return tmp_path_factory.mktemp("slurm_work")


@SHARED_WORKDIR
@pytest.mark.timeout(1500)
def test_pipeline_through_slurm(tmp_path, slurm_cluster, workdir):
    profile = make_profile(tmp_path / "profile", slurm_cluster)
    # one task and one seed: every rule of the DAG, in a few minutes of status polling
    cfg = tiny_config()
    cfg.update(seeds=[0], tasks={"mnist": cfg["tasks"]["mnist"]})
    run = run_snakemake(workdir, profile, write(tmp_path / "tiny.yaml", cfg))
    output = run.stdout + run.stderr
    assert run.returncode == 0, explain(run, workdir)

    assert (workdir / "reports" / "tiny" / "index.html").exists()
    rows = list(csv.DictReader((workdir / "results/tiny/tables/summary.csv").open()))
    got = sorted((r["task"], int(r["num_labels"]), r["algorithm"], int(r["n_seeds"])) for r in rows)
    assert got == [("mnist", 20, "fixmatch", 1), ("mnist", 20, "supervised", 1)]

    # every job went through sbatch and SLURM ran it to completion in this working directory
    jobs = submissions(output)
    rules = [rule for rule, _ in jobs]
    assert rules.count("train") == 2, output[-4000:]
    assert {"fetch", "prepare", "split", "aggregate", "figures", "report"} <= set(rules)
    records = jobcomp_records({job_id for _, job_id in jobs})
    assert set(records) == {job_id for _, job_id in jobs}
    for rule, job_id in jobs:
        record = records[job_id]
        assert record["JobState"] == "COMPLETED", (rule, record)
        assert Path(record["WorkDir"]) == workdir, record
    # gpus_per_job is 0: no job asks for a GPU (where slurmctld still knows it, MinJobAge)
    for _, job_id in jobs:
        info = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                              text=True).stdout
        assert not re.findall(r"TresPer\w+=\S*gpu", info), info
    # the profile's resources reached SLURM: fetch has its own memory, train the default
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    for rule in ("fetch", "train"):
        mem = settings["set-resources"].get(rule, {}).get(
            "mem_mb", settings["default-resources"]["mem_mb"])
        for job_id in (j for r, j in jobs if r == rule):
            assert f"mem={mem}M" in records[job_id]["Tres"], records[job_id]


@SHARED_WORKDIR
@pytest.mark.timeout(900)
def test_failing_gpu_job_under_slurm_fails_the_run(tmp_path, slurm_cluster, workdir):
    """A training job that asks for a GPU and crashes at run time (a backbone built for
    3-channel input on 1-channel MNIST): SLURM gets the GPU request once, the failure stops
    the run."""
    profile = make_profile(tmp_path / "profile", slurm_cluster)
    cfg = tiny_config()
    cfg.update(benchmark="tiny_bad", seeds=[0], algorithms=["supervised"], gpus_per_job=1,
               tasks={"mnist": {"num_labels": [20], "train": TINY_TRAIN,
                                "backbone_args": {"in_chans": 3}}})
    run = run_snakemake(workdir, profile, write(tmp_path / "bad.yaml", cfg))
    output = run.stdout + run.stderr
    assert run.returncode != 0, explain(run, workdir)
    assert "Error in rule train" in output

    jobs = submissions(output)
    train = [job_id for rule, job_id in jobs if rule == "train"]
    retries = yaml.safe_load(PROJECT_PROFILE.read_text()).get("retries", 0)
    assert len(train) == 1 + retries, output[-4000:]
    records = jobcomp_records(set(train))
    assert [records[j]["JobState"] for j in train] == ["FAILED"] * len(train), records
    for job_id in train:
        # finished jobs stay known to slurmctld for MinJobAge (300 s)
        info = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                              text=True, check=True).stdout
        assert re.findall(r"TresPer\w+=\S*gpu\S*", info) == ["TresPerJob=gres:gpu:1"], info
    # the failure is the job's own, kept in its SLURM log and the rule's log
    logs = {p.name for p in (workdir / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert {f"{job_id}.log" for job_id in train} <= logs
    log = workdir / "logs/train/tiny_bad/mnist/20/supervised/seed0.log"
    assert "3 channels" in log.read_text()
    assert not (workdir / "results/tiny_bad/runs/mnist/20/supervised/seed0/metrics.json").exists()


def _iterations_for(seconds: float, train: dict) -> int:
    """Iterations that take about ``seconds`` of training on this machine (measured here)."""
    import time

    import torch

    from semibench.config import check_config, run_config
    from semibench.splits import make_split, write_split
    from semibench.tasks import create_task, load_prepared
    from semibench.train.loop import train_run

    root = Path(tempfile.mkdtemp(prefix="calibrate"))
    task = create_task("mnist")
    task.fetch(root / "raw")
    task.prepare(root / "raw", root / "prepared")
    data = load_prepared(root / "prepared")
    write_split(make_split(data.train_y, task="mnist", num_classes=10, num_labels=20,
                           val_per_class=20, seed=0), root / "split.json")
    probe = {**train, "iterations": 100, "eval_every": 100}
    cfg = check_config({"algorithms": ["supervised"], "seeds": [0],
                        "tasks": {"mnist": {"num_labels": [20], "train": probe}}})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started = time.perf_counter()
    train_run(run_config(cfg, "mnist", 20, "supervised", 0), root / "prepared",
              root / "split.json", root / "out")
    torch.set_num_threads(threads)
    per_iteration = (time.perf_counter() - started) / 100
    return int(seconds / per_iteration)


@pytest.mark.xdist_group("slurm_time_limit")
@pytest.mark.timeout(1500)
def test_time_limit_is_survived_over_retries(tmp_path, slurm_cluster, workdir):
    """A training job longer than its SLURM time limit (1 minute) and with no evaluation until
    its end: at the limit SLURM sends SIGTERM, the job checkpoints at the step it is on and
    fails, the profile's retry resumes there, and after a few such jobs the run completes."""
    profile = make_profile(tmp_path / "profile", slurm_cluster)
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    settings["retries"] = 6
    settings["set-resources"]["train"] = {**settings["default-resources"], "runtime": 1}
    write(profile / "config.yaml", settings)
    # SLURM looks at time limits every 30 s, so a job must outlast 90 s to be stopped surely;
    # its length comes from a calibration on this machine, whose load changes: a job that
    # finished inside its limit (a quieter machine than at calibration) is run once more, longer
    for attempt, seconds in enumerate((100, 250)):
        train = {"batch_size": 64, "uratio": 1, "eval_batch_size": 256}
        iterations = _iterations_for(seconds, train)
        train.update(iterations=iterations, eval_every=iterations)  # no checkpoint but SIGTERM's
        cfg = tiny_config()
        cfg.update(benchmark=f"tiny_limit{attempt}", seeds=[0], algorithms=["supervised"],
                   tasks={"mnist": {"num_labels": [20], "train": train}})
        run_dir = workdir / f"results/tiny_limit{attempt}/runs/mnist/20/supervised/seed0"
        # the run alone (its target path): the report's jobs would only add SLURM's polling
        run = run_snakemake(workdir, profile, write(tmp_path / f"limit{attempt}.yaml", cfg),
                            str((run_dir / "metrics.json").relative_to(workdir)))
        output = run.stdout + run.stderr
        assert run.returncode == 0, explain(run, workdir)
        train_jobs = [job_id for rule, job_id in submissions(output) if rule == "train"]
        text = (run_dir / "history.log").read_text()
        if "stopped by signal 15" in text:
            break
        # no attempt was stopped while training: the limit came after its last step (the
        # job then fails at the limit and its retry finds the run finished) or never
    records = jobcomp_records(set(train_jobs))
    states = [records[j]["JobState"] for j in train_jobs]
    assert len(train_jobs) >= 2 and states[-1] == "COMPLETED", states
    assert set(states[:-1]) == {"TIMEOUT"}, states
    # each attempt but the first resumed where the previous one stopped, at a step boundary
    stopped = [int(n) for n in re.findall(r"stopped by signal 15 after iteration (\d+)", text)]
    resumed = [int(n) for n in re.findall(r"resumed from iteration (\d+)", text)]
    # every stop was resumed where it stopped, each later than the one before (an attempt that
    # SLURM ends before Python has started leaves no record, and the next resumes as before)
    assert 1 <= len(stopped) <= len(train_jobs) - 1 and resumed == stopped, (stopped, resumed)
    assert stopped == sorted(set(stopped)) and 0 < stopped[0] < iterations
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["last"]["iteration"] == iterations
