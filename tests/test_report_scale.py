"""The report of a large sweep (issue #21): tables read per task and merged (the same files as
one read of every run), lists handed to the jobs without a command line, a page split into an
index page and a page per task, and a missing or corrupt result file named with its run."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest
import yaml
from report_runs import DOMAINS, write_run

from semibench.cli import main
from semibench.config import ConfigError, check_config
from semibench.report import jobs, layout
from semibench.report.html import write_report
from semibench.report.model import build
from semibench.report.parts import aggregate_task, merge_tasks, read_table
from semibench.report.reading import MetricsFormatError, collect
from semibench.report.tables import table_names, write_tables
from semibench.report.view import PAGE_ROWS
from tests.helpers.workflow import REPO, snakemake, write

ALGORITHMS = ("supervised", "fixmatch", "flexmatch", "fullysupervised")
#: mnist: 5 budgets x 4 algorithms x 6 seeds = 120 runs (more than a page of a table);
#: keywords and newsgroups: a few each, one newsgroups run not finished
GRID = ([("mnist", n, a, s) for n in (20, 40, 60, 80, 100) for a in ALGORITHMS
         for s in range(6)]
        + [("keywords", 50, a, s) for a in ALGORITHMS[:3] for s in (0, 1)]
        + [("newsgroups", 40, a, s) for a in ALGORITHMS[:2] for s in (0, 1)])
FINISHED = GRID[:-1]


def _files(root: Path, runs, benchmark: str = "fake") -> dict[str, list[str]]:
    dirs = [root / layout.run_dir(benchmark, *key) for key in runs]
    return {"metrics": [str(d / "metrics.json") for d in dirs],
            "curves": [str(d / "curve.csv") for d in dirs],
            "benchmarks": [str(root / layout.train_benchmark(benchmark, *key))
                           for key in runs]}


def _grid_json(grid=GRID) -> dict:
    return {"domains": {t: DOMAINS[t] for t, *_ in grid}, "runs": [list(r) for r in grid],
            "tasks": {t: {"base": t, "long_tailed": None} for t, *_ in grid}}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    for key in FINISHED:
        write_run(root, "fake", *key, evaluations=6)
    return root


def _tables(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.*"))}


def test_tables_merged_from_the_tasks_parts_are_those_of_one_read(sweep: Path,
                                                                  tmp_path: Path) -> None:
    """What the workflow's aggregate_task and aggregate jobs write (each task read alone,
    then merged from the parts, never from the runs' files) is, byte for byte, what one read
    of every run writes."""
    from semibench.report.summaries import grid_frame

    files = _files(sweep, FINISHED)
    once = collect(files["metrics"], files["curves"], files["benchmarks"])
    spec = _grid_json()
    write_tables(once.runs, tmp_path / "once", published=["usb_cv"],
                 grid=grid_frame(spec["runs"], spec["domains"]), curves=once.curves,
                 per_class=once.per_class, title="t", metrics=["error", "macro_f1"],
                 tasks=spec["tasks"])
    parts = tmp_path / "parts"
    for task in sorted({t for t, *_ in GRID}):
        mine = [r for r in GRID if r[0] == task and r in FINISHED]
        task_files = _files(sweep, mine)
        grid = [r for r in GRID if r[0] == task]
        with jobs.job(tmp_path / "logs" / f"{task}.log", f"aggregate ({task})"):
            # the task's grid has a run more than its files here (not finished): no key order
            jobs.aggregate_task(task, DOMAINS[task], grid, task_files["metrics"],
                                task_files["curves"], task_files["benchmarks"],
                                str(parts / task))
    with jobs.job(tmp_path / "logs" / "aggregate.log", "aggregate"):
        jobs.aggregate([str(parts / t) for t in ("newsgroups", "mnist", "keywords")],
                       str(tmp_path / "merged"), ["usb_cv"], "t", ["error", "macro_f1"],
                       spec["tasks"])
    once_files, merged = _tables(tmp_path / "once"), _tables(tmp_path / "merged")
    assert sorted(merged) == sorted(table_names(["image", "audio", "text"]))
    assert merged == once_files
    assert len(pd.read_csv(tmp_path / "merged" / "curves.csv")) == len(FINISHED) * 6
    assert sorted(p.name for p in (parts / "mnist").iterdir()) == sorted(layout.TASK_TABLES)


def test_the_command_takes_its_lists_from_files(sweep: Path, tmp_path: Path) -> None:
    files = _files(sweep, FINISHED)
    assert main(["aggregate", "--metrics", *files["metrics"], "--curves", *files["curves"],
                 "--benchmarks", *files["benchmarks"], "--grid-json", json.dumps(_grid_json()),
                 "--out-dir", str(tmp_path / "argv")]) == 0
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps(files), encoding="utf-8")
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps(_grid_json()), encoding="utf-8")
    assert main(["aggregate", "--inputs-file", str(inputs), "--grid-file", str(grid),
                 "--out-dir", str(tmp_path / "files")]) == 0
    assert _tables(tmp_path / "files") == _tables(tmp_path / "argv")
    # the same parts as the workflow's aggregate_task jobs write
    assert (tmp_path / "files" / "tasks" / "mnist" / "runs.csv").is_file()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"metrics": "one.json"}), encoding="utf-8")
    with pytest.raises(SystemExit, match="a JSON object of lists of paths"):
        main(["aggregate", "--inputs-file", str(bad), "--out-dir", str(tmp_path / "bad")])


def test_a_corrupt_file_names_the_file_and_the_run(sweep: Path, tmp_path: Path) -> None:
    runs = [r for r in FINISHED if r[0] == "keywords"]
    files = _files(sweep, runs)
    broken = tmp_path / "broken" / "metrics.json"
    broken.parent.mkdir()
    broken.write_text('{"task": "keywords", "best": ', encoding="utf-8")
    curve = broken.with_name("curve.csv")
    curve.write_text(Path(files["curves"][1]).read_text(encoding="utf-8"), encoding="utf-8")
    files["metrics"][1], files["curves"][1] = str(broken), str(curve)
    with pytest.raises(MetricsFormatError) as err:
        aggregate_task("keywords", "audio", tmp_path / "part", files["metrics"],
                       files["curves"], files["benchmarks"], grid=runs)
    message = str(err.value)
    assert message.startswith(f"run keywords/50/{runs[1][2]}/seed{runs[1][3]}: {broken}: "
                              "cannot read metrics file") and "\n" not in message
    # the job: one line in its log and exit status 1, no traceback
    log = tmp_path / "job.log"
    with pytest.raises(SystemExit) as stop, jobs.job(log, "aggregate (keywords)"):
        jobs.aggregate_task("keywords", "audio", runs, files["metrics"], files["curves"],
                            files["benchmarks"], str(tmp_path / "part"))
    assert stop.value.code == 1
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines == [f"semibench aggregate (keywords): error: {message}"]
    # a truncated curve, a run recording another task: each named with its run
    files = _files(sweep, runs)
    truncated = tmp_path / "t" / "curve.csv"
    truncated.parent.mkdir()
    truncated.write_text("iteration,val_error\n100,20,5\n", encoding="utf-8")
    (truncated.parent / "metrics.json").write_text(
        Path(files["metrics"][0]).read_text(encoding="utf-8"), encoding="utf-8")
    files["metrics"][0], files["curves"][0] = str(truncated.parent / "metrics.json"), \
        str(truncated)
    with pytest.raises(MetricsFormatError, match=re.escape(
            f"run keywords/50/supervised/seed0: {truncated}: cannot read curve file")):
        aggregate_task("keywords", "audio", tmp_path / "p2", files["metrics"], files["curves"],
                       grid=runs)
    with pytest.raises(ValueError, match="records task 'keywords', not 'mnist'"):
        aggregate_task("mnist", "image", tmp_path / "p3", _files(sweep, runs)["metrics"])


def test_partial_report_leaves_out_an_unreadable_run_and_names_it(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = {"benchmark": "fake", "seeds": [0, 1], "algorithms": ["supervised", "fixmatch"],
              "tasks": {"mnist": {"num_labels": [20]}, "keywords": {"num_labels": [50]}},
              "train": {"device": "cpu"}}
    for task, n in (("mnist", 20), ("keywords", 50)):
        for algorithm in ("supervised", "fixmatch"):
            for seed in (0, 1):
                write_run(tmp_path, "fake", task, n, algorithm, seed)
    corrupt = tmp_path / layout.run_dir("fake", "mnist", 20, "fixmatch", 1) / "metrics.json"
    corrupt.write_text(corrupt.read_text(encoding="utf-8")[:-40], encoding="utf-8")
    lost = tmp_path / layout.run_dir("fake", "keywords", 50, "supervised", 0) / "curve.csv"
    lost.unlink()
    path = tmp_path / "fake.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["report", "--partial", "--configfile", str(path), "--directory",
                 str(tmp_path)]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "wrote" not in line]
    assert len(warned) == 2
    assert warned[0] == f"run keywords/50/supervised/seed0: {lost}: curve file missing (its " \
        "metrics file metrics.json is there)"
    assert warned[1].startswith(f"run mnist/20/fixmatch/seed1: {corrupt}: cannot read metrics")
    page = (tmp_path / layout.PARTIAL_DIR.format(benchmark="fake") / "index.html").read_text(
        encoding="utf-8")
    assert "Partial report: 6 of 8 runs finished." in page
    assert "2 finished runs could not be read and are left out" in page
    assert "run mnist/20/fixmatch/seed1: " in page and "run keywords/50/supervised/seed0: " \
        in page


def test_split_pages_above_the_limits_and_one_page_refused() -> None:
    assert not layout.split_pages(2000, 30)
    assert layout.split_pages(2001, 1) and layout.split_pages(10, 31)
    assert layout.split_pages(10, 1, {"pages": "split"})
    assert not layout.split_pages(10, 1, {"pages": "one", "one_page_max_runs": 10})
    assert not layout.split_pages(5000, 1, {"one_page_max_runs": 5000})
    with pytest.raises(ValueError, match=r"report.pages=one: the grid has 2,001 runs over 1 "
                                         r"tasks.*one_page_max_runs=2,000"):
        layout.split_pages(2001, 1, {"pages": "one"})
    # in the config: one line before any job
    config = {"seeds": list(range(700)), "algorithms": ["supervised", "fixmatch", "flexmatch"],
              "tasks": {"mnist": {"num_labels": [20]}}, "train": {"device": "cpu"},
              "report": {"pages": "one"}}
    with pytest.raises(ConfigError) as err:
        check_config(config, weights="skip")
    assert str(err.value).startswith("report.pages=one: the grid has 2,100 runs")
    assert "\n" not in str(err.value)
    assert check_config({**config, "report": {"pages": "auto"}}, weights="skip")
    with pytest.raises(ConfigError, match="report.pages"):
        check_config({**config, "report": {"pages": "two"}}, weights="skip")


def _split_report(sweep: Path, out: Path) -> list[Path]:
    files = _files(sweep, FINISHED)
    tables, figures = out / "tables", out / "figures"
    assert main(["aggregate", "--metrics", *files["metrics"], "--curves", *files["curves"],
                 "--grid-json", json.dumps(_grid_json()), "--out-dir", str(tables)]) == 0
    assert main(["figures", "--runs", str(tables / "runs.csv"), "--grid", str(tables / "grid.csv"),
                 "--curves", str(tables / "curves.csv"), "--per-class",
                 str(tables / "per_class.csv"), "--cd-groups", "image",
                 "--out-dir", str(figures)]) == 0
    pngs = sorted(figures.glob("*.png"))
    inputs = out / "inputs.json"
    inputs.write_text(json.dumps({"figures": [str(p) for p in pngs]}), encoding="utf-8")
    config = out / "config.json"
    config.write_text(json.dumps({"benchmark": "fake"}), encoding="utf-8")
    assert main(["report", "--runs", str(tables / "runs.csv"), "--grid",
                 str(tables / "grid.csv"), "--inputs-file", str(inputs), "--out",
                 str(out / "page" / "index.html"), "--title", "SemiBench: fake",
                 "--config-json-file", str(config), "--pages", "split"]) == 0
    return pngs


def test_a_split_report_is_an_index_page_and_a_page_per_task(sweep: Path,
                                                             tmp_path: Path) -> None:
    pngs = _split_report(sweep, tmp_path)
    page = tmp_path / "page"
    index = (page / "index.html").read_text(encoding="utf-8")
    assert "data:image" not in index
    assert sorted(p.name for p in (page / "tasks").iterdir()) == [
        "keywords.html", "mnist.html", "newsgroups.html"]
    assert sorted(p.name for p in (page / "figures").iterdir()) == sorted(p.name for p in pngs)
    for html in [page / "index.html", *(page / "tasks").iterdir()]:
        text = html.read_text(encoding="utf-8")
        images = re.findall(r'<img src="([^"]+)"[^>]*loading="([a-z]+)"', text)
        assert images and all(loading == "lazy" for _, loading in images), html
        for src, _ in images:  # every figure where the page looks for it
            assert (html.parent / src).is_file(), (html, src)
        for link in re.findall(r'<a href="([^"#]+)"', text):
            assert (html.parent / link).is_file(), (html, link)
    # the index: paper tables, statistics (the CD diagram), cost, the tasks' list; no runs
    assert 'id="paper-image"' in index and 'src="figures/cd_image.png"' in index
    assert 'src="figures/cost_pareto.png"' in index and '<section id="runs">' not in index
    assert '<a href="tasks/mnist.html">mnist</a>' in index
    assert "on <a href=\"#tasks\">each task's page</a>" in index  # the partial banner
    mnist = (page / "tasks" / "mnist.html").read_text(encoding="utf-8")
    assert "<h2>All runs (120)</h2>" in mnist and "120 of 120 runs finished" in mnist
    assert 'class="data sortable paged"' in mnist  # 120 rows: filtered and paged
    assert 'src="../figures/mnist_curves.png"' in mnist
    news = (page / "tasks" / "newsgroups.html").read_text(encoding="utf-8")
    assert "<h2>Missing runs (1)</h2>" in news and "3 of 4 runs finished" in news
    # the default: one self-contained page (the grid is small)
    assert main(["report", "--runs", str(tmp_path / "tables" / "runs.csv"), "--grid",
                 str(tmp_path / "tables" / "grid.csv"), "--figures", *map(str, pngs),
                 "--out", str(tmp_path / "one.html")]) == 0
    one = (tmp_path / "one.html").read_text(encoding="utf-8")
    assert one.count('<img src="data:image/png;base64,') == len(pngs)
    assert '<a href="tasks/' not in one and "table.paged" in one
    assert len(re.findall(r'class="data sortable paged"', one)) == 1  # the runs: 131 rows
    assert len(FINISHED) > PAGE_ROWS


def test_write_report_splits_from_the_tables(sweep: Path, tmp_path: Path) -> None:
    files = _files(sweep, FINISHED)
    aggregate_task("mnist", "image", tmp_path / "m", files["metrics"][:120],
                   files["curves"][:120], grid=GRID[:120])
    merge_tasks([tmp_path / "m"], tmp_path / "t")
    data = build(read_table(tmp_path / "t" / "runs.csv"), read_table(tmp_path / "t" / "grid.csv"))
    written = write_report(data, [], tmp_path / "r" / "index.html", "t", split=True)
    assert [p.relative_to(tmp_path / "r").as_posix() for p in written] == [
        "index.html", "tasks/mnist.html"]


# --------------------------------------------------------------------------- the workflow


#: Linux: one argument at most 128 KiB (MAX_ARG_STRLEN), all of them about 2 MiB (ARG_MAX)
MAX_ARG = 128 * 1024
MAX_COMMAND = 2 * 1024 * 1024


def _sweep_config(seeds: int, **extra) -> dict:
    """Two tasks, every algorithm, ten label budgets each: 380 runs per seed."""
    return {"benchmark": "sweep", "seeds": list(range(seeds)), "algorithms": "all",
            "tasks": {"mnist": {"num_labels": [10 * i for i in range(1, 11)]},
                      "keywords": {"num_labels": [10 * i for i in range(1, 11)]}},
            "train": {"device": "cpu"}, **extra}


@pytest.mark.slow
def test_no_rule_puts_a_sweep_on_a_command_line(tmp_path: Path) -> None:
    """Every job's command of a 20,140-run sweep, as the dry run prints them: each argument
    and each command far below Linux's limits (the report's jobs are scripts: no command)."""
    path = write(tmp_path / "sweep.yaml", _sweep_config(53))
    run = snakemake(tmp_path, "--configfile", str(path), "-n", "-p")
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout + run.stderr
    counts = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", out, re.M)}
    assert counts["train"] == 20_140 and counts["aggregate_task"] == 2
    printed = re.findall(r"^Shell command: (.*)$", out, re.M)
    commands = [c for c in printed if c != "None"]
    shell_jobs = sum(counts[rule] for rule in ("fetch", "prepare", "split", "train"))
    assert len(commands) == shell_jobs  # one per job of a shell rule
    # the report's jobs are scripts: their lists never reach a command line (nor does the
    # target rule `all` have one)
    scripts = sum(counts[rule] for rule in ("aggregate_task", "aggregate", "figures_task",
                                            "figures", "report", "all"))
    assert len(printed) - len(commands) == scripts
    longest_arg = max(len(arg.encode()) for c in commands for arg in shlex.split(c))
    longest = max(len(c.encode()) for c in commands)
    assert longest_arg < MAX_ARG / 32 and longest < MAX_COMMAND / 256, (longest_arg, longest)


@pytest.mark.slow
def test_the_report_rules_run_a_synthetic_sweep_and_rerun_one_task(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The report's rules through Snakemake on 300 finished runs (the trainer's files): the
    tables are those of `semibench aggregate` reading every run once; one changed run reads
    its task again and nothing else; the split report's pages are there."""
    config = _sweep_config(0)
    config.update(seeds=[0, 1, 2], algorithms=["supervised", "fixmatch", "flexmatch",
                                                "fullysupervised"],
                  algorithm_params={"fixmatch": {"p_cutoff": [0.9, 0.95]}},
                  tasks={"mnist": {"num_labels": [10 * i for i in range(1, 11)]},
                         "keywords": {"num_labels": [10, 20, 30, 40, 50]}},
                  report={"pages": "split"})
    path = write(tmp_path / "sweep.yaml", config)
    from semibench.workflow_plan import compute

    plan = compute(json.loads(json.dumps(config)), REPO / "workflow/schemas/config.schema.yaml")
    grid = [tuple(r) for r in plan["grid"]]
    assert len(grid) == 15 * 5 * 3
    for key in grid:
        write_run(tmp_path, "sweep", *key, settings=plan["runs"]["/".join(map(str, key))])
    rules = ["--allowed-rules", "aggregate_task", "aggregate", "figures_task",
             "figures_task_swept", "figures", "report"]
    run = snakemake(tmp_path, "--configfile", str(path), *rules)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    tables = tmp_path / layout.TABLES_DIR.format(benchmark="sweep")
    monkeypatch.chdir(tmp_path)  # the workflow's paths (runs.csv names them) are relative
    files = _files(Path(), grid, "sweep")
    once = tmp_path / "once"
    spec = {"domains": {"mnist": "image", "keywords": "audio"}, "runs": [list(r) for r in grid],
            "tasks": {t: {"base": t, "long_tailed": None} for t in ("mnist", "keywords")}}
    assert main(["aggregate", *(a for k, v in files.items() for a in (f"--{k}", *v)),
                 "--grid-json", json.dumps(spec), "--out-dir", str(once),
                 "--title", "SemiBench: sweep"]) == 0
    assert _tables(tables) == _tables(once)
    report = tmp_path / "reports" / "sweep"
    assert (report / "tasks" / "keywords.html").is_file()
    assert (report / "figures" / "mnist_sensitivity.png").is_file()
    # one run of keywords finished again: its task's jobs and the merge, nothing of mnist
    metrics = tmp_path / layout.run_dir("sweep", "keywords", 30, "fixmatch,p_cutoff=0.9", 1) \
        / "metrics.json"
    data = json.loads(metrics.read_text(encoding="utf-8"))
    data["best"]["test_error"] = 1.25
    metrics.write_text(json.dumps(data), encoding="utf-8")
    dry = snakemake(tmp_path, "--configfile", str(path), "-n", *rules)
    jobs_run = dict(re.findall(r"^(\w+)\s+(\d+)$", dry.stdout, re.M))
    assert jobs_run == {"aggregate_task": "1", "aggregate": "1", "figures_task_swept": "1",
                        "figures": "1", "report": "1", "all": "1", "total": "6"}, dry.stdout
    assert "task=keywords" in dry.stdout and "task=mnist" not in dry.stdout
    rerun = snakemake(tmp_path, "--configfile", str(path), *rules)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    runs = pd.read_csv(tables / "runs.csv")
    assert (runs["best_test_error"] == 1.25).sum() == 1
