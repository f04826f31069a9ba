# What the report's rules (report.smk) need from the config: the tasks' runs and files, the
# figures, whether the page is split. Logic lives in semibench.report.
from semibench.report import layout as report_layout
from semibench.report.sensitivity import swept_tasks

# `semibench report --partial` finds runs through semibench.report.layout: it must name the
# files this workflow writes
if RUN_DIR != report_layout.RUN_DIR.format(
    benchmark=BENCHMARK,
    task="{task}",
    num_labels="{num_labels}",
    algorithm="{algorithm}",
    seed="{seed}",
) or str(rules.train.benchmark) != report_layout.TRAIN_BENCHMARK.format(
    benchmark=BENCHMARK,
    task="{task}",
    num_labels="{num_labels}",
    algorithm="{algorithm}",
    seed="{seed}",
):
    sys.exit("SemiBench: semibench/report/layout.py does not match workflow/rules (run dirs)")

DOMAINS = {t: PLAN["tasks"][t]["domain"] for t in TASK_NAMES}
REPORT_GROUPS = report_layout.groups(DOMAINS.values())
# statistics groups whose grid allows a Friedman test get a critical-difference diagram
CD_GROUPS = report_layout.testable_groups(GRID, DOMAINS)
# each task's configured runs, in grid order; every task's part of the tables
# (semibench.report.parts) is read from exactly its runs' files
TASK_RUNS = {t: [] for t in TASK_NAMES}
for _run in GRID:
    TASK_RUNS[_run[0]].append(list(_run))
# tasks with swept runs (semibench.sweep) get a sensitivity figure
SWEPT_TASKS = swept_tasks({t: [a for _t, _n, a, _s in runs] for t, runs in TASK_RUNS.items()})
TASK_TABLES = report_layout.TASK_TABLES_DIR.format(benchmark=BENCHMARK, task="{task}")
# every run label (an algorithm, or one point of its sweep): fixes each one's colour
ALGORITHM_LABELS = sorted({a for _t, _n, a, _s in GRID})
UNSWEPT_TASKS = [t for t in TASK_NAMES if t not in SWEPT_TASKS]
# each task's registered task and long-tailed setting, which USB's published rows match
# (semibench.variants.task_settings)
TASK_SETTINGS = {
    t: {"base": PLAN["tasks"][t]["base"], "long_tailed": PLAN["tasks"][t]["long_tailed"]}
    for t in TASK_NAMES
}
# a large sweep's report is an index page and a page per task (report.pages in the config)
SPLIT_PAGES = report_layout.split_pages(len(GRID), len(TASK_NAMES), config.get("report"))
REPORT_DIR = os.path.dirname(REPORT_HTML)


def task_run_files(wildcards):
    """One task's runs' files, in grid order: what its part of the tables is read from."""
    runs = TASK_RUNS[wildcards.task]
    return {
        "metrics": [run_file(*run, "metrics.json") for run in runs],
        "curves": [run_file(*run, "curve.csv") for run in runs],
        "benchmarks": [report_layout.train_benchmark(BENCHMARK, *run) for run in runs],
    }


def task_part(name):
    return expand(f"{TASK_TABLES}/{name}", task=TASK_NAMES)


def task_figures(tasks, kinds):
    return [f"{FIGURES_DIR}/{kind.format(task=t)}.png" for t in tasks for kind in kinds]


def one_of(names):
    """A wildcard constraint matching exactly these names (nothing when there are none)."""
    return "|".join(names) or "(?!)"


def task_figure_outputs(swept):
    """A task's figures (semibench.report.figures.write_task_figures), captioned for
    Snakemake's report; a task with swept runs (semibench.sweep) also has its sensitivity."""
    kinds = {
        "bars": ("{task}", "errors", "3. Per task"),
        "curves": ("{task}_curves", "curves", "3. Per task"),
        "pseudolabels": ("{task}_pseudolabels", "pseudolabels", "4. Diagnostics"),
        "per_class": ("{task}_per_class", "per_class", "4. Diagnostics"),
        "sensitivity": (report_layout.SENSITIVITY_FIGURE, "sensitivity", "3. Per task"),
    }
    return {
        name: report(f"{FIGURES_DIR}/{stem}.png", caption=f"../report/{caption}.rst",
                     category=category)
        for name, (stem, caption, category) in kinds.items()
        if swept or name != "sensitivity"
    }
