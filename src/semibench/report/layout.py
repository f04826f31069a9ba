"""Where a benchmark's files are, and what its report contains, from the config alone.

Standard library only: ``workflow/rules/report.smk`` imports it to declare the report's
outputs, and ``semibench report --partial`` uses the same templates to find the runs that have
finished, so the two cannot drift apart (``report.smk`` checks at parse time that these
templates are the ones the ``train`` rule writes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: one training run's directory and the Snakemake benchmark file of its ``train`` job
RUN_DIR = "results/{benchmark}/runs/{task}/{num_labels}/{algorithm}/seed{seed}"
TRAIN_BENCHMARK = "logs/benchmarks/train/{benchmark}/{task}/{num_labels}/{algorithm}/seed{seed}.tsv"
TABLES_DIR = "results/{benchmark}/tables"
#: one task's part of the tables (semibench.report.parts), read again only when its runs change
TASK_TABLES_DIR = "results/{benchmark}/tables/tasks/{task}"
TASK_TABLES: tuple[str, ...] = ("runs.csv", "grid.csv", "curves.csv", "per_class.csv")
FIGURES_DIR = "results/{benchmark}/figures"
REPORT_HTML = "reports/{benchmark}/index.html"
#: a report of many runs (:func:`split_pages`): an index page and a page per task beside it,
#: the figures as files in a folder beside them (relative to the index page's folder)
TASK_PAGE = "tasks/{task}.html"
PAGE_FIGURES_DIR = "figures"
#: the config's ``report.pages`` and its limits for one page
PAGES: tuple[str, ...] = ("auto", "one", "split")
ONE_PAGE_MAX_RUNS = 2000
ONE_PAGE_MAX_TASKS = 30
#: ``semibench report --partial`` writes here (index.html, tables/, figures/), never over the
#: complete report that Snakemake owns
PARTIAL_DIR = "reports/{benchmark}/partial"

#: the upper bound: trained on every label of the pool, so never ranked or tested against
UPPER_BOUND = "fullysupervised"
#: the lower bound (labelled data only); ranked and tested like any other algorithm
LOWER_BOUND = "supervised"
#: the statistics group that pools every domain
ALL = "all"
#: a Friedman test needs at least this many algorithms (scipy's requirement; with two it is
#: a sign test) ...
MIN_ALGORITHMS = 3
#: ... and this many settings (task x label budget). With fewer, the chi-square approximation
#: is poor and the test has next to no power (Demšar 2006, JMLR 7, section 3.2.2): the report
#: says "too few settings" instead of printing a p-value.
MIN_SETTINGS = 5
DOMAIN_TITLES: dict[str, str] = {
    "image": "Vision (CV)",
    "text": "Language (NLP)",
    "audio": "Audio",
    ALL: "All domains",
}

#: figure file names (stems) per task, in the order the report shows them
TASK_FIGURES: tuple[str, ...] = ("{task}", "{task}_curves", "{task}_pseudolabels",
                                 "{task}_per_class")
CD_FIGURE = "cd_{group}"
COST_FIGURE = "cost_pareto"
#: a task with swept runs (semibench.sweep) also gets this figure
SENSITIVITY_FIGURE = "{task}_sensitivity"

#: table files written by ``semibench aggregate`` (besides the per-group paper tables)
DATA_TABLES: tuple[str, ...] = ("runs.csv", "grid.csv", "curves.csv", "per_class.csv")
RESULT_TABLES: tuple[str, ...] = (
    "summary.csv", "summary.md", "usb_published.csv", "comparisons.csv", "statistics.csv",
    "statistics_ranks.csv", "statistics_posthoc.csv", "cost.csv", "sensitivity.csv",
)
PAPER_TABLE = "paper_{group}"
PAPER_FORMATS: tuple[str, ...] = ("csv", "md", "tex")


def run_dir(benchmark: str, task: str, num_labels: int, algorithm: str, seed: int) -> str:
    return RUN_DIR.format(benchmark=benchmark, task=task, num_labels=num_labels,
                          algorithm=algorithm, seed=seed)


def train_benchmark(benchmark: str, task: str, num_labels: int, algorithm: str,
                    seed: int) -> str:
    return TRAIN_BENCHMARK.format(benchmark=benchmark, task=task, num_labels=num_labels,
                                  algorithm=algorithm, seed=seed)


def groups(domains: Iterable[str]) -> list[str]:
    """The table groups: every domain (sorted), for which the report has a paper table."""
    return sorted(set(domains))


def statistics_groups(domains: Iterable[str]) -> list[str]:
    """Every domain, plus :data:`ALL` when there is more than one."""
    found = groups(domains)
    return [*found, ALL] if len(found) > 1 else found


def group_tasks(group: str, domains: Mapping[str, str]) -> list[str]:
    """The tasks of ``group`` (a domain or :data:`ALL`), sorted; ``domains``: task -> domain."""
    return sorted(t for t, d in domains.items() if group in (ALL, d))


def compared_algorithms(algorithms: Iterable[str]) -> list[str]:
    """The algorithms that are ranked and tested: all but the upper bound."""
    return sorted({a for a in algorithms if a != UPPER_BOUND})


def testable_groups(grid: Sequence[tuple[str, int, str, int]],
                    domains: Mapping[str, str]) -> list[str]:
    """Statistics groups whose full grid allows a Friedman test: at least
    :data:`MIN_SETTINGS` settings on which at least :data:`MIN_ALGORITHMS` compared
    algorithms all run. The report draws a critical-difference diagram for exactly these."""
    testable = []
    for group in statistics_groups(domains.values()):
        tasks = set(group_tasks(group, domains))
        per_setting: dict[tuple[str, int], set[str]] = {}
        for task, num_labels, algorithm, _seed in grid:
            if task in tasks:
                per_setting.setdefault((task, int(num_labels)), set()).add(algorithm)
        if not per_setting:
            continue
        common = set.intersection(*per_setting.values())
        if (len(per_setting) >= MIN_SETTINGS
                and len(compared_algorithms(common)) >= MIN_ALGORITHMS):
            testable.append(group)
    return testable


def split_pages(runs: int, tasks: int, settings: Mapping[str, Any] | None = None) -> bool:
    """Whether the report of ``runs`` configured runs over ``tasks`` tasks is an index page
    plus a page per task (else one self-contained page), from the config's ``report``
    section: ``pages`` auto (split above ``one_page_max_runs`` runs or
    ``one_page_max_tasks`` tasks), one or split. Raises ValueError, one line, for ``one``
    with a grid above those limits."""
    settings = settings or {}
    pages = settings.get("pages", "auto")
    if pages not in PAGES:
        raise ValueError(f"report.pages={pages!r}: allowed: {', '.join(PAGES)}")
    max_runs = int(settings.get("one_page_max_runs", ONE_PAGE_MAX_RUNS))
    max_tasks = int(settings.get("one_page_max_tasks", ONE_PAGE_MAX_TASKS))
    too_big = runs > max_runs or tasks > max_tasks
    if pages == "one" and too_big:
        raise ValueError(
            f"report.pages=one: the grid has {runs:,} runs over {tasks} tasks, more than one "
            f"page holds (report.one_page_max_runs={max_runs:,}, one_page_max_tasks="
            f"{max_tasks}); set report.pages to auto or split (an index page and a page per "
            f"task), or raise those limits")
    return pages == "split" or (pages == "auto" and too_big)
