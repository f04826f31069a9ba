"""End to end: the whole Snakemake DAG in a temporary directory. The full pipeline runs once per
session on a combined config (tests/helpers/pipeline.py) shared with the variant and own-data
tests; the tests here read its outputs and check reruns with dry runs."""

import csv
import json
import os
import signal
import subprocess
import time
import zipfile

import pytest
import yaml

from semibench.workflow_plan import ConfigInvalid, workflow_plan
from tests.helpers.pipeline import RUNS, TINY_TRAIN, combined_config, tiny_config
from tests.helpers.workflow import BIN, REPO, snakemake, train_jobs, write

PIPELINE = pytest.mark.xdist_group("combined_pipeline")
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.mark.slow
@PIPELINE
def test_pipeline_end_to_end(combined_pipeline):
    p = combined_pipeline
    html = p.workdir / "reports" / "combined" / "index.html"
    assert html.exists() and "data:image/png;base64," in html.read_text()
    rows = list(csv.DictReader(p.results("tables/summary.csv").open()))
    got = sorted((r["task"], int(r["num_labels"]), r["algorithm"], int(r["n_seeds"])) for r in rows)
    assert got == sorted((t, n, a, 2) for t, n, algorithms in RUNS for a in algorithms)
    # each summary is the mean of its seeds' recorded errors, traceable to the metrics files
    for r in rows:
        errors = [json.loads(p.results(f"runs/{r['task']}/{r['num_labels']}/{r['algorithm']}/"
                                       f"seed{s}/metrics.json").read_text())["best"]["test_error"]
                  for s in (0, 1)]
        assert float(r["best_test_error_mean"]) == pytest.approx(sum(errors) / 2, abs=1e-6), r
    for task in ["mnist", "keywords", "newsgroups"]:
        for kind in ("", "_curves", "_pseudolabels", "_per_class"):
            assert p.results(f"figures/{task}{kind}.png").stat().st_size > 1000
    for name in ("paper_image.tex", "paper_text.md", "paper_audio.csv", "statistics.csv",
                 "comparisons.csv", "cost.csv", "curves.csv", "per_class.csv"):
        assert p.results(f"tables/{name}").stat().st_size > 0
    total = sum(2 * len(algorithms) for *_, algorithms in RUNS)
    assert f"{total} of {total} runs" in html.read_text()
    # Snakemake's own report lists the same tables and figures, with captions
    zipped = p.workdir / "snakemake_report.zip"
    report = snakemake(p.workdir, "--configfile", str(p.configfile), "--report", str(zipped))
    assert report.returncode == 0, report.stderr[-3000:]
    names = "\n".join(zipfile.ZipFile(zipped).namelist())
    for name in ("paper_image.csv", "statistics.csv", "cost_pareto.png", "mnist_pseudolabels.png"):
        assert name in names, name
    split = yaml.safe_load((p.workdir / "data/splits/mnist/20/seed0.json").read_text())
    assert len(split["labelled"]) == 20


@pytest.mark.slow
@PIPELINE
def test_a_rerun_does_nothing_and_a_changed_parameter_reruns_only_its_runs(combined_pipeline):
    p = combined_pipeline
    again = p.dry_run()
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    # one algorithm's hyper-parameter changes: only that algorithm's runs (and the report) rerun
    changed = write(p.workdir / "changed.yaml", combined_config(fixmatch={"p_cutoff": 0.9}))
    dry = p.dry_run(changed)
    assert dry.returncode == 0, dry.stderr[-2000:]
    jobs = train_jobs(dry.stdout + dry.stderr)
    plain = sorted((t, "fixmatch", s) for t, _, algorithms in RUNS if "fixmatch" in algorithms
                   for s in ("0", "1"))
    assert [j for j in jobs if j[1] == "fixmatch"] == plain
    # nothing else but FixMatch composed with an imbalance method (it takes FixMatch's
    # parameters as its base's)
    assert all(j[1] == "fixmatch" or j[1].startswith("fixmatch_") for j in jobs), jobs


@pytest.mark.slow
def test_invalid_config_stops_before_any_job(tmp_path):
    """The Snakefile stops on a bad config with one line and before any job."""
    cfg = write(tmp_path / "bad.yaml", {**tiny_config(), "train": {"iterations": 0}})
    run = snakemake(tmp_path, "--configfile", str(cfg))
    assert run.returncode != 0
    lines = [ln for ln in (run.stdout + run.stderr).splitlines() if "SemiBench config error" in ln]
    assert len(lines) == 1 and "train.iterations=0" in lines[0]
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"tasks": {"mnist": {"num_labels": [25]}}}, "tasks.mnist.num_labels[0]=25: must be a multiple"),
        ({"algorithms": ["fixmatch", "nomatch"]}, "unknown algorithm 'nomatch'"),
        ({"train": {"iterations": 0}}, "train.iterations=0"),
    ],
)
def test_invalid_config_is_refused_naming_the_key(tmp_path, change, message):
    """What the Snakefile calls before any job (the Snakemake start above shows how it stops),
    in one line, and no plan is cached for it."""
    with pytest.raises(ConfigInvalid) as err:
        workflow_plan({**tiny_config(), **change}, SCHEMA, tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())


def test_workflow_lint_is_clean(tmp_path):
    run = snakemake(tmp_path, "--lint")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Congratulations, your workflow is in a good condition" in run.stdout + run.stderr


def test_all_algorithms_make_one_train_job_each(tmp_path):
    """`algorithms: all` through the DAG: one train job per registered algorithm, each writing
    its own run (a dry run: every algorithm trains from its resolved run settings in
    test_algorithms_generic.py::test_runs_in_its_domains, and the combined pipeline runs the
    train rule itself)."""
    from semibench.algorithms import ALGORITHMS

    cfg = tiny_config()
    cfg.update(seeds=[0], algorithms="all",
               tasks={"mnist": {"num_labels": [20], "train": TINY_TRAIN}})
    path = write(tmp_path / "all.yaml", cfg)
    run = snakemake(tmp_path, "--configfile", str(path), "-n")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    jobs = train_jobs(run.stdout + run.stderr)
    assert jobs == sorted(("mnist", a, "0") for a in ALGORITHMS.names())


@pytest.mark.slow
def test_snakemake_killed_by_sigkill_resumes_after_unlock(tmp_path):
    """SIGKILL to Snakemake and its jobs (a lost terminal, a node going down) leaves its lock:
    the rerun says to run --unlock, and after that the killed training job resumes from its
    checkpoint and the pipeline completes."""
    cfg = tiny_config()
    cfg.update(benchmark="killed", seeds=[0], algorithms=["supervised"],
               tasks={"mnist": {"num_labels": [20], "train": {
                   **TINY_TRAIN, "iterations": 160, "eval_every": 40, "batch_size": 16}}})
    path = write(tmp_path / "killed.yaml", cfg)
    run_dir = tmp_path / "results/killed/runs/mnist/20/supervised/seed0"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory",
         str(tmp_path), "--cores", "2", "--configfile", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.monotonic() + 600
    while not (run_dir / "checkpoint.pt").exists():  # its record is written before it
        assert proc.poll() is None and time.monotonic() < deadline, "training never started"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # semibench status reads what the real Snakemake left: the job marked started, the lock
    # of a Snakemake that no longer runs (it cannot tell a stale lock: it says since when)
    assert _state(path, tmp_path) == "running"

    locked = snakemake(tmp_path, "--configfile", str(path))
    assert locked.returncode != 0
    assert "--unlock" in locked.stdout + locked.stderr
    unlock = snakemake(tmp_path, "--configfile", str(path), "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    assert _state(path, tmp_path) == "interrupted"  # started, no Snakemake holds it
    rerun = snakemake(tmp_path, "--configfile", str(path), "--rerun-incomplete")
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "resumed from iteration" in (run_dir / "history.log").read_text()
    assert (tmp_path / "reports/killed/index.html").exists()


def _state(configfile, directory) -> str:
    """The one run's state as ``semibench status`` reads it."""
    from semibench.cli.status import sweep_status
    from semibench.config_file import check_config_file

    config, _ = check_config_file(configfile, weights="skip")
    (run,) = sweep_status(config, str(configfile), directory).runs
    return run.state
