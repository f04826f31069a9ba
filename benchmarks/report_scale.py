"""How the report scales with a sweep: N synthetic finished runs in the trainer's exact file
format, then every report rule's job timed on its own, the whole report through Snakemake, one
changed run re-reported, and the dry run against Snakemake's floor.

    python benchmarks/report_scale.py                       # 1,600, 5,000 and 20,000 runs
    python benchmarks/report_scale.py --seeds 3 --out benchmarks/out/report-scale-usb.md

The sweeps are config/usb.yaml (its 15 tasks, every algorithm and label budget) with 3, 10 and
38 seeds: 1,596, 5,320 and 20,216 runs. Each run is written as the trainer writes it
(``metrics.json`` with the run's resolved settings from the workflow's own plan, per-class
accuracies for the task's classes, ``curve.csv`` with 100 evaluations, Snakemake's benchmark
file), by ``tests/report_runs.py``, which the report's tests use too.

Timings: wall-clock seconds, and the CPU seconds of the process and every process it waited
for (on a quiet machine, the whole report's wall time is about its CPU time over the 2 cores);
memory: the peak resident set of the largest process (a job, or the Snakemake process), from
``wait4``; "Snakemake alone": a call with nothing to do (reading the workflow, the plan and
20,000 jobs' files); load: the machine's 1-minute load average before and after. Each job is a fresh process, as Snakemake starts it:
Python, the imports and the work. Snakemake runs with ``--cores 2`` and ``--allowed-rules``
the report's rules (the runs exist without their training data, as on a cluster's result
folder copied elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

REPORT_RULES = ("aggregate_task", "aggregate", "figures_task", "figures_task_swept", "figures",
                "report")
EVALUATIONS = 100


# --------------------------------------------------------------------------- the sweep


def write_config(folder: Path, seeds: int) -> Path:
    import yaml

    config = yaml.safe_load((REPO / "config/usb.yaml").read_text(encoding="utf-8"))
    config["seeds"] = list(range(seeds))
    config["benchmark"] = f"usb_s{seeds}"
    path = folder / f"usb_s{seeds}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def plan_of(config: Path, workdir: Path) -> dict[str, Any]:
    """The workflow's plan of ``config``, cached where Snakemake finds it in ``workdir``."""
    from dry_run_floor import plan_of as plan

    return plan(config, workdir / ".snakemake" / "semibench")


def write_runs(workdir: Path, plan: dict[str, Any]) -> int:
    """Every run of the plan, finished, in the trainer's format."""
    from report_runs import write_run

    from semibench.tasks import create_task

    classes = {t: create_task(s["base"]).num_classes for t, s in plan["tasks"].items()}
    benchmark = plan["config"]["benchmark"]
    for task, n, algorithm, seed in plan["grid"]:
        write_run(workdir, benchmark, task, n, algorithm, seed,
                  domain=plan["tasks"][task]["domain"],
                  classes=[f"class{i}" for i in range(classes[task])], evaluations=EVALUATIONS,
                  settings=plan["runs"][f"{task}/{n}/{algorithm}/{seed}"])
    return len(plan["grid"])


# --------------------------------------------------------------------------- measuring


def timed(argv: list[str], cwd: Path, log: Path) -> tuple[float, float, float]:
    """Run ``argv`` (nice 10) in ``cwd``; (seconds, peak MB of its largest process, CPU
    seconds of it and every process it waited for)."""
    argv = ["nice", "-n", "10", *argv]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    with log.open("ab") as out:
        start = time.perf_counter()
        pid = _spawn_in(argv, env, cwd, out.fileno())
        _, status, usage = os.wait4(pid, 0)
        seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(argv)} failed (see {log})")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def _spawn_in(argv: list[str], env: dict[str, str], cwd: Path, out: int) -> int:
    pid = os.fork()
    if pid == 0:  # the child: into cwd, output to the log, then the command
        try:
            os.chdir(cwd)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    return pid


def step(name: str, spec: dict[str, Any], workdir: Path,
         log: Path) -> tuple[float, float, float]:
    """One report job (a semibench.report.jobs function) in a fresh process, as Snakemake
    runs it."""
    spec_file = Path(tempfile.mkstemp(suffix=".json")[1])
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    try:
        return timed([sys.executable, __file__, "--step", name, "--spec", str(spec_file)],
                     workdir, log)
    finally:
        spec_file.unlink()


def run_step(name: str, spec_file: Path) -> None:
    from semibench.report import jobs

    getattr(jobs, name)(**json.loads(spec_file.read_text(encoding="utf-8")))


def snakemake(workdir: Path, config: Path, log: Path,
              *extra: str) -> tuple[float, float, float]:
    return timed([str(Path(sys.executable).parent / "snakemake"), "--snakefile",
                  str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
                  str(config), "--cores", "2", "--allowed-rules", *REPORT_RULES, "--quiet",
                  *extra], workdir, log)


def measure(seeds: int, root: Path, floor: bool) -> dict[str, Any]:
    from semibench.report import layout
    from semibench.report.sensitivity import swept_tasks

    folder = root / f"s{seeds}"
    workdir = folder / "work"
    workdir.mkdir(parents=True)
    log = folder / "log.txt"
    config = write_config(folder, seeds)
    plan = plan_of(config, workdir)
    benchmark = plan["config"]["benchmark"]
    start = time.perf_counter()
    runs = write_runs(workdir, plan)
    written = time.perf_counter() - start
    tasks = sorted(plan["tasks"])
    grid = plan["grid"]
    tables = workdir / layout.TABLES_DIR.format(benchmark=benchmark)
    figures = workdir / layout.FIGURES_DIR.format(benchmark=benchmark)
    result: dict[str, Any] = {"seeds": seeds, "runs": runs, "tasks": len(tasks),
                              "write_s": written, "load_before": os.getloadavg()[0]}

    # each job on its own, as the workflow runs them (one after the other here)
    per_task: list[tuple[float, float, float]] = []
    for task in tasks:
        mine = [r for r in grid if r[0] == task]
        per_task.append(step("aggregate_task", {
            "task": task, "domain": plan["tasks"][task]["domain"], "runs": mine,
            "metrics": [layout.run_dir(benchmark, *r) + "/metrics.json" for r in mine],
            "curves": [layout.run_dir(benchmark, *r) + "/curve.csv" for r in mine],
            "benchmarks": [layout.train_benchmark(benchmark, *r) for r in mine],
            "out_dir": str(tables / "tasks" / task)}, workdir, log))
    result["aggregate_task"] = per_task
    settings = {t: {"base": s["base"], "long_tailed": s["long_tailed"]}
                for t, s in plan["tasks"].items()}
    result["aggregate"] = step("aggregate", {
        "task_dirs": [str(tables / "tasks" / t) for t in tasks], "out_dir": str(tables),
        "published": plan["config"]["published_reference"], "title": f"SemiBench: {benchmark}",
        "metrics": plan["config"]["metrics"], "tasks": settings}, workdir, log)
    labels = sorted({r[2] for r in grid})
    result["figures_task"] = [step("task_figures", {
        "task": t, "tables": str(tables / "tasks" / t), "out_dir": str(figures),
        "algorithms": labels}, workdir, log) for t in tasks]
    domains = {t: s["domain"] for t, s in plan["tasks"].items()}
    cd = layout.testable_groups([tuple(r) for r in grid], domains)
    result["figures"] = step("group_figures", {
        "runs": str(tables / "runs.csv"), "grid": str(tables / "grid.csv"),
        "out_dir": str(figures), "cd_groups": cd}, workdir, log)
    swept = swept_tasks({t: [r[2] for r in grid if r[0] == t] for t in tasks})
    names = [f"{stem.format(task=t)}.png" for t in tasks
             for stem in (*layout.TASK_FIGURES, *([layout.SENSITIVITY_FIGURE] if t in swept
                                                   else []))]
    names += [f"cd_{g}.png" for g in cd] + ["cost_pareto.png"]
    split = layout.split_pages(len(grid), len(tasks), plan["config"].get("report"))
    page = folder / "step-report" / "index.html"
    result["report"] = step("report", {
        "runs": str(tables / "runs.csv"), "grid": str(tables / "grid.csv"),
        "figures": [str(figures / n) for n in names], "out_html": str(page),
        "title": f"SemiBench: {benchmark}", "config_json": json.dumps(plan["config"]),
        "published": plan["config"]["published_reference"],
        "metrics": plan["config"]["metrics"], "split": split}, workdir, log)
    result["split"] = split
    result["page_mb"] = sum(p.stat().st_size for p in page.parent.rglob("*.html")) / 1e6
    result["largest_page_mb"] = max(p.stat().st_size for p in page.parent.rglob("*.html")) / 1e6

    # the whole report through Snakemake, from the runs alone
    shutil.rmtree(tables)
    shutil.rmtree(figures)
    result["snakemake"] = snakemake(workdir, config, log)
    result["nothing_to_do"] = snakemake(workdir, config, log)
    # one run changed (a rerun that finished): its task is read again, nothing else
    task, n, algorithm, seed = grid[len(grid) // 2]
    metrics = workdir / layout.run_dir(benchmark, task, n, algorithm, seed) / "metrics.json"
    data = json.loads(metrics.read_text(encoding="utf-8"))
    data["best"]["test_error"] = max(0.0, data["best"]["test_error"] - 1.5)
    metrics.write_text(json.dumps(data), encoding="utf-8")
    result["one_run"] = snakemake(workdir, config, log)
    result["one_run_task"] = task
    result["load_after"] = os.getloadavg()[0]
    if floor:
        from dry_run_floor import measure as dry

        result["dry"] = dry(config, repeat=1)
    (folder / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


# --------------------------------------------------------------------------- the table


def _s(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def _gb(mb: float) -> str:
    return f"{mb / 1024:.2f} GB"


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| runs (tasks) | aggregate per task: slowest (all) | merge | figures per task: "
        "slowest (all) | CD and cost figures | report | whole report, Snakemake, 2 cores: "
        "wall (CPU) | peak memory | one run changed: wall (CPU) | Snakemake alone | dry run: "
        "workflow / floor | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        agg, fig = r["aggregate_task"], r["figures_task"]
        peak = max(m for _, m, _ in [*agg, *fig, r["aggregate"], r["figures"], r["report"],
                                     r["snakemake"], r["one_run"]])
        pages = (f"{_s(r['report'][0])}: index + {r['tasks']} task pages, largest "
                 f"{r['largest_page_mb']:.1f} MB" if r["split"]
                 else f"{_s(r['report'][0])}: one page, {r['page_mb']:.1f} MB")
        dry = (f"{_s(r['dry']['workflow_s'])} / {_s(r['dry']['floor_s'])} = "
               f"{r['dry']['ratio']:.2f}x" if "dry" in r else "-")
        lines.append(
            f"| {r['runs']:,} ({r['tasks']}) | {_s(max(s for s, *_ in agg))} "
            f"({_s(sum(s for s, *_ in agg))}) | {_s(r['aggregate'][0])} | "
            f"{_s(max(s for s, *_ in fig))} ({_s(sum(s for s, *_ in fig))}) | "
            f"{_s(r['figures'][0])} | {pages} | {_s(r['snakemake'][0])} "
            f"({_s(r['snakemake'][2])}) | {_gb(peak)} | {_s(r['one_run'][0])} "
            f"({_s(r['one_run'][2])}) | {_s(r['nothing_to_do'][0])} | {dry} | "
            f"{r['load_before']:.1f}-{r['load_after']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 10, 38],
                        help="seeds of usb.yaml per sweep (3, 10, 38: 1,596, 5,320, 20,216 runs)")
    parser.add_argument("--out", type=Path, help="write the table here too (Markdown)")
    parser.add_argument("--workdir", type=Path, help="keep the sweeps here (default: a "
                        "temporary folder, removed)")
    parser.add_argument("--no-floor", action="store_true", help="skip the dry-run comparison")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        run_step(args.step, args.spec)
        return 0
    root = args.workdir or Path(tempfile.mkdtemp(prefix="report-scale-"))
    results = []
    try:
        for seeds in args.seeds:
            results.append(measure(seeds, root, not args.no_floor))
            print(table(results[-1:]).splitlines()[-1], flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    text = (f"`benchmarks/report_scale.py` on {platform.node()} ({os.cpu_count()} cores), "
            f"{date.today()}: config/usb.yaml with more seeds, {EVALUATIONS} evaluations per "
            f"curve.\n\n{table(results)}\n")
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
