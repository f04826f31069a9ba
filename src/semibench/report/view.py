"""The report's view model: every section of the report as dataclasses of formatted text,
built once (:func:`build_view`) from :class:`~semibench.report.tables.ReportData`, and rendered
by two templates: ``templates/report.html.j2`` (the page) and ``templates/summary.md.j2``
(``summary.md``). Numbers are formatted here, once; the templates choose the layout and the
wording around them (the page shows figures, every run and the configuration; the Markdown
shows the per-task tables instead of figures).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from semibench.metrics_file import METRICS
from semibench.report import cost as costs
from semibench.report import paper
from semibench.report import published as usb
from semibench.report.aggregate import PAIRED_TEST, format_test_p
from semibench.report.figures import algorithm_colors, color_hex
from semibench.report.formatting import (
    CHECKPOINTS,
    MISSING_CELL,
    error_table,
    format_cell,
    format_diff,
    format_p,
    plural,
)
from semibench.report.frames import METRIC_TITLES
from semibench.report.layout import (
    DOMAIN_TITLES,
    LOWER_BOUND,
    PAGE_FIGURES_DIR,
    TASK_PAGE,
    UPPER_BOUND,
)
from semibench.report.model import ReportData
from semibench.report.placement import FigureView, TaskFigures, classify_figures, slug
from semibench.report.placement import figure_view as embedded_or_linked
from semibench.report.summaries import describe_runs, summarize

STATISTICS_INTRO = (
    "Friedman test over the settings (task × label budget) of each domain, and over all of "
    "them, on the mean test error at the best-validation checkpoint; Nemenyi post-hoc test "
    "and critical-difference diagram (Demšar 2006; scipy and scikit-posthocs). Compared: "
    f"every algorithm but {UPPER_BOUND}, which sees every label."
)
#: a table with more rows is filtered and paginated in the browser (the page's script)
PAGE_ROWS = 100
#: a task's figures above its diagnostics, in this order (semibench.report.placement kinds)
MAIN_FIGURES: tuple[str, ...] = ("errors", "curves", "sensitivity")
DIAGNOSTIC_FIGURES: tuple[str, ...] = ("pseudolabels", "per_class")
COST_NOTE = (
    "Device-hours: the trainer's own clock (summed over resumes) times one device per run. "
    "Job hours and peak memory: Snakemake's benchmark of each train job (the whole job, last "
    "attempt). Minutes per run: mean training time."
)



# --------------------------------------------------------------------------- view models


@dataclass
class Cell:
    text: str
    css: str = ""
    sort: Any = None
    mark: str = ""
    swatch: str = ""
    title: str = ""
    href: str = ""  # a link (a task's page)


@dataclass
class Row:
    cells: list[Cell]
    css: str = ""


@dataclass
class Header:
    text: str
    numeric: bool = False


@dataclass
class Table:
    header: list[Header]
    rows: list[Row]
    sortable: bool = True
    caption: str = ""
    css: str = ""
    paged: bool = False  # more than PAGE_ROWS rows: filtered and paginated in the browser


@dataclass
class PaperView:
    """One domain's paper table: the page's table, its last-checkpoint twin, LaTeX and the
    Markdown of :func:`semibench.report.paper.to_markdown` (the paper files' own format)."""

    id: str
    title: str
    table: Table
    latex: str
    markdown: str
    last: Table


@dataclass
class StatisticsView:
    id: str
    title: str
    message: str
    tested: bool
    excluded: str
    settings: str  # "5 settings": what the mean ranks are taken over
    ranks: Table | None
    posthoc: Table | None
    figure: FigureView | None


@dataclass
class TaskTable:
    """One task's table of a metric: algorithms x label budgets, bold = best per budget."""

    task: str
    domain: str
    table: Table


@dataclass
class MetricTables:
    """Per-task tables of one metric at one checkpoint (the Markdown's per-task sections)."""

    metric: str
    which: str
    heading: str
    best: str  # "lowest" or "highest"
    tasks: list[TaskTable]


@dataclass
class CostView:
    id: str
    title: str
    keys: list[str]
    table: Table
    empty: bool  # no runs: the page leaves the table out
    markdown: bool  # also in summary.md (per algorithm, per task)


@dataclass
class PublishedView:
    tables: str
    note: str
    summary: str
    table: Table | None


@dataclass
class TocEntry:
    id: str
    title: str
    children: list[TocEntry] = field(default_factory=list)


@dataclass
class ReportView:
    """Everything either rendering of the report shows."""

    title: str
    runs_sentence: str
    complete: bool
    done: int
    expected: int
    device_statement: str
    checkpoints: dict[str, str]
    paper: list[PaperView]
    paper_notes: str
    statistics: list[StatisticsView]
    statistics_intro: str
    baseline: str
    upper_bound: str
    paired_test: str
    comparisons: Table | None
    error_tables: list[MetricTables]
    metric_tables: list[MetricTables]
    tasks: list[TaskFigures]
    diagnostics: list[TaskFigures]
    cost_tables: list[CostView]
    cost_note: str
    cost_figure: FigureView | None
    published: PublishedView | None
    runs_table: Table
    missing_count: int
    missing_table: Table | None
    other_figures: list[FigureView]
    config: str | None
    toc: list[TocEntry]
    missing_cell: str = MISSING_CELL
    #: an index page with a page per task (semibench.report.layout.split_pages): the tasks'
    #: figures, runs and missing runs are on their pages, listed in ``task_index``
    split: bool = False
    task_index: Table | None = None
    #: runs left out because a file of theirs cannot be read (a partial report), one line
    #: each naming the file and the run
    unreadable: list[str] = field(default_factory=list)
    #: whether any run has finished (the Markdown's cost tables)
    has_runs: bool = False


@dataclass
class TaskPageView:
    """One task's page of a split report: its figures, every run, the runs still missing."""

    title: str
    benchmark_title: str
    task: str
    domain: str
    done: int
    expected: int
    figures: list[FigureView]
    diagnostics: list[FigureView]
    runs_table: Table
    missing_count: int
    missing_table: Table | None
    toc: list[TocEntry]
    index_href: str = "../index.html"


def _num(value: Any) -> Any:
    """A sort key for a numeric cell ("" where there is no number)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return "" if not math.isfinite(number) else f"{number:.6g}"


def _alg_cell(name: str, colors: Mapping[str, tuple]) -> Cell:
    color = colors.get(name)
    return Cell(str(name), css="text", swatch=color_hex(color) if color is not None else "")


def _simple_table(frame: pd.DataFrame, colors: Mapping[str, tuple], numeric: Sequence[str] = (),
                  caption: str = "") -> Table:
    """A frame of already formatted strings; ``numeric`` columns are right-aligned and sort
    by their number; an ``algorithm`` column gets the algorithm's colour."""
    header = [Header(str(c), numeric=c in numeric) for c in frame.columns]
    rows = []
    for record in frame.to_dict("records"):
        cells = []
        for column in frame.columns:
            value = record[column]
            if column == "algorithm":
                cells.append(_alg_cell(str(value), colors))
            elif column in numeric:
                cells.append(Cell(str(value), sort=_num(str(value).split(" ")[0])))
            else:
                cells.append(Cell(str(value), css="text"))
        rows.append(Row(cells))
    return Table(header, rows, caption=caption, paged=len(rows) > PAGE_ROWS)


def _paper_view(table: paper.PaperTable, colors: Mapping[str, tuple]) -> Table:
    header = [Header("algorithm"), *(Header(paper.setting_label(s), numeric=True)
                                     for s in table.settings),
              Header("mean error", numeric=True), Header("mean rank", numeric=True)]
    rows = []
    for alg in table.algorithms:
        cells = [_alg_cell(alg, colors)]
        for s in table.settings:
            n, expected = int(table.n_seeds.at[alg, s]), int(table.expected.at[alg, s])
            css = "missing" if n == 0 and expected else "notrun" if n == 0 else \
                "partial" if n < expected else ""
            cells.append(Cell(table.cell_text(alg, s), css=css, sort=_num(table.mean.at[alg, s]),
                              mark=table.marks.at[alg, s],
                              title=f"rank {table.ranks.at[alg, s]:g}"
                              if np.isfinite(table.ranks.at[alg, s]) else ""))
        cells.append(Cell(table.summary_text(alg, "mean_error"),
                          sort=_num(table.mean_error[alg])))
        cells.append(Cell(table.summary_text(alg, "mean_rank") if alg != UPPER_BOUND
                          else paper.NOT_RUN, sort=_num(table.mean_rank[alg])
                          if alg != UPPER_BOUND else ""))
        rows.append(Row(cells, css=table.role(alg).replace(" ", "-")))
    return Table(header, rows, css="paper", paged=len(rows) > PAGE_ROWS)


# --------------------------------------------------------------------------- sections


def cost_rows(table: pd.DataFrame, keys: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows of a cost table (shared by Markdown and HTML)."""
    header = [*keys, "runs", "device (precision)", "device-hours", "min per run",
              "job hours", "peak memory (GB)"]
    rows = []
    for r in table.to_dict("records"):
        rows.append([*(str(r[k]) for k in keys), str(r["runs"]),
                     f"{r['device']} ({r['precision']})", f"{r['device_h']:.3f}",
                     f"{r['mean_run_min']:.1f}",
                     f"{r['job_h']:.3f}" if pd.notna(r["job_h"]) else "n/a",
                     f"{r['peak_rss_gb']:.2f}" if pd.notna(r["peak_rss_gb"]) else "n/a"])
    return header, rows




def _published_view(data: ReportData, colors: Mapping[str, tuple]) -> PublishedView | None:
    if not data.published_tables:
        return None
    table = data.published
    frame = pd.DataFrame({
        "task": table["task"], "labels": table["num_labels"].astype(str),
        "algorithm": table["algorithm"], "seeds": table["n_seeds"].astype(str),
        "ours": [format_cell(m, s) if n else "missing"
                 for m, s, n in zip(table["ours_mean"], table["ours_std"], table["n_seeds"],
                                    strict=True)],
        "USB": [format_cell(m, s) for m, s in zip(table["usb_mean"], table["usb_std"],
                                                  strict=True)],
        "difference": table["difference"].map(format_diff),
        "inside USB ± 2 std": table["within_2std"].map(
            lambda v: {True: "yes", False: "no"}.get(v, "n/a")),
        "USB table": table["usb_benchmark"],
    })
    return PublishedView(
        tables=", ".join(data.published_tables), note=usb.NOTE,
        summary=usb.summary_line(table),
        table=_simple_table(frame, colors, numeric=["labels", "seeds", "ours", "USB",
                                                    "difference"]) if len(frame) else None,
    )


def _runs_table(runs: pd.DataFrame, colors: Mapping[str, tuple],
                metrics: Sequence[str] = ("error",)) -> Table:
    """Every run; the config's ``metrics:`` beyond the error add a best-on-validation column
    each (n/a where a run lacks it, e.g. top-5 with 5 classes or fewer)."""
    frame = pd.DataFrame({
        "task": runs["task"], "labels": runs["num_labels"].astype(str),
        "algorithm": runs["algorithm"], "seed": runs["seed"].astype(str),
        "best test error (%)": runs["best_test_error"].map(lambda v: f"{v:.2f}"),
        "last test error (%)": runs["last_test_error"].map(lambda v: f"{v:.2f}"),
        "best val error (%)": runs["best_val_error"].map(lambda v: f"{v:.2f}"),
        "best iteration": runs["best_iteration"].astype(str),
        # how many samples chose that checkpoint (n/a: a run written before it was recorded)
        "val size": runs.get("val_size", pd.Series(math.nan, index=runs.index)).map(
            lambda v: "n/a" if pd.isna(v) else str(int(v))),
        "training time (min)": runs["wall_time_s"].map(lambda v: f"{v / 60:.2f}"),
        "device": runs["device"],
        "precision": runs.get("precision", ""),
    })
    numeric = ["labels", "seed", "best test error (%)", "last test error (%)",
               "best val error (%)", "best iteration", "val size", "training time (min)"]
    for metric in metrics:
        column = f"best_{METRICS[metric][0]}"
        if metric == "error" or column not in runs:
            continue
        title = METRIC_TITLES[metric].split(" (100")[0].replace("Test", "best test")
        title = title if title.startswith("best") else f"best {title[0].lower()}{title[1:]}"
        frame.insert(6, title, runs[column].map(lambda v: "n/a" if pd.isna(v) else f"{v:.2f}"))
        numeric.append(title)
    return _simple_table(frame, colors, numeric=numeric)


def _statistics_views(data: ReportData, colors: Mapping[str, tuple],
                      placed: Mapping[tuple[str, str], Any],
                      figure_view: Any = embedded_or_linked) -> list[StatisticsView]:
    views = []
    for r in data.statistics:
        ranks = posthoc = None
        if len(r.mean_ranks):
            frame = pd.DataFrame({"algorithm": r.mean_ranks.sort_values().index,
                                  "mean rank": [f"{v:.2f}" for v in r.mean_ranks.sort_values()]})
            ranks = _simple_table(frame, colors, numeric=["mean rank"],
                                  caption=f"Mean rank over {plural(len(r.settings), 'setting')}")
        if r.posthoc is not None:
            rows = [{"algorithm": a, "other": b, "p-value": format_p(float(r.posthoc.at[a, b])),
                     "different at α": "yes" if r.posthoc.at[a, b] < r.alpha else "no"}
                    for i, a in enumerate(r.algorithms) for b in r.algorithms[i + 1:]]
            posthoc = _simple_table(pd.DataFrame(rows), colors, numeric=["p-value"])
        cd = placed.get(("cd", r.group))
        views.append(StatisticsView(
            id=f"stat-{slug(r.group)}", title=r.title, message=r.message, tested=r.tested,
            excluded=", ".join(r.excluded), settings=plural(len(r.settings), "setting"),
            ranks=ranks, posthoc=posthoc, figure=figure_view(cd, "cd") if cd else None,
        ))
    return views


def _comparison_table(data: ReportData, colors: Mapping[str, tuple]) -> Table | None:
    c = data.comparisons
    if c.empty:
        return None
    frame = pd.DataFrame({
        "task": c["task"], "labels": c["num_labels"].astype(str), "algorithm": c["algorithm"],
        "baseline": c["baseline"], "shared seeds": c["n_shared_seeds"].astype(str),
        "baseline mean": c["baseline_mean"].map(lambda v: f"{v:.2f}"),
        "algorithm mean": c["algorithm_mean"].map(lambda v: f"{v:.2f}"),
        "mean difference": c["mean_difference"].map(format_diff),
        "p-value": [format_test_p(p, n) for p, n in zip(c["p_value"], c["n_shared_seeds"],
                                                        strict=True)],
        "Holm p-value": [format_test_p(p, n) for p, n in zip(c["p_holm"], c["n_shared_seeds"],
                                                             strict=True)],
    }).replace("nan", "n/a")
    return _simple_table(frame, colors, numeric=["labels", "shared seeds", "baseline mean",
                                                 "algorithm mean", "mean difference", "p-value",
                                                 "Holm p-value"])


def _cost_views(data: ReportData, colors: Mapping[str, tuple]) -> list[CostView]:
    """Cost per algorithm and per task (page and Markdown), per task and algorithm and in
    total (page only)."""
    views = []
    for keys, title in ((["algorithm"], "Per algorithm"), (["task"], "Per task"),
                        (["task", "algorithm"], "Per task and algorithm"), ([], "Total")):
        table = costs.cost_table(data.runs, keys)
        header, rows = cost_rows(table, keys)
        frame = pd.DataFrame(rows, columns=header)
        views.append(CostView(
            id=f"cost-{slug('-'.join(keys) or 'total')}", title=title, keys=keys,
            table=_simple_table(frame, colors, numeric=[
                h for h in header[len(keys):] if not h.startswith("device (")]),
            empty=table.empty, markdown=len(keys) == 1))
    return views


def _task_tables(summary: pd.DataFrame, domains: Mapping[str, str], which: str,
                 metric: str) -> list[TaskTable]:
    out = []
    for task in sorted(summary["task"].unique()) if len(summary) else []:
        cells_, bold = error_table(summary, task, which, metric)
        header = [Header("algorithm"), *(Header(f"{b} labels", numeric=True)
                                         for b in cells_.columns)]
        rows = [Row([Cell(str(a), css="text"),
                     *(Cell(cells_.at[a, b], mark="best" if bold.at[a, b] else "")
                       for b in cells_.columns)]) for a in cells_.index]
        out.append(TaskTable(str(task), domains.get(task, ""), Table(header, rows)))
    return out


def _metric_tables(data: ReportData, summary: pd.DataFrame) -> tuple[list[MetricTables],
                                                                   list[MetricTables]]:
    """Per-task tables of the error at both checkpoints, and of every other metric of the
    config's ``metrics:`` at the best-validation checkpoint."""
    errors = [MetricTables("error", which, heading, "lowest",
                           _task_tables(summary, data.domains, which, "error"))
              for which, heading in CHECKPOINTS.items()]
    others = [MetricTables(metric, "best", METRIC_TITLES[metric],
                           "highest" if metric == "macro_f1" else "lowest",
                           _task_tables(summary, data.domains, "best", metric))
              for metric in data.metrics if metric != "error"]
    return errors, others


def _missing_table(missing: pd.DataFrame, colors: Mapping[str, tuple]) -> Table | None:
    if not len(missing):
        return None
    frame = pd.DataFrame({"task": missing["task"], "labels": missing["num_labels"].astype(str),
                          "algorithm": missing["algorithm"],
                          "seed": missing["seed"].astype(str)})
    return _simple_table(frame, colors, numeric=["labels", "seed"])


def _task_index(data: ReportData, colors: Mapping[str, tuple]) -> Table:
    """A split report's list of tasks: domain, finished and configured runs, its page."""
    tasks = sorted(data.domains)
    done = data.runs.groupby("task").size() if len(data.runs) else pd.Series(dtype=int)
    expected = data.grid.groupby("task").size() if len(data.grid) else pd.Series(dtype=int)
    header = [Header("task"), Header("domain"), Header("runs finished", numeric=True),
              Header("runs configured", numeric=True), Header("missing", numeric=True)]
    rows = []
    for task in tasks:
        n_done, n_expected = int(done.get(task, 0)), int(expected.get(task, 0))
        n_expected = max(n_expected, n_done)
        rows.append(Row([Cell(task, css="text", href=TASK_PAGE.format(task=task)),
                         Cell(data.domains[task], css="text"),
                         Cell(f"{n_done:,}", sort=n_done), Cell(f"{n_expected:,}",
                                                                sort=n_expected),
                         Cell(f"{n_expected - n_done:,}", sort=n_expected - n_done,
                              css="missing" if n_done < n_expected else "")]))
    return Table(header, rows, paged=len(rows) > PAGE_ROWS)


def figure_href(path: Path, page_depth: int = 0) -> str:
    """A split report's figure, from a page ``page_depth`` folders below the index page."""
    return "../" * page_depth + f"{PAGE_FIGURES_DIR}/{path.name}"


def build_view(
    data: ReportData,
    figures: Sequence[str | Path] = (),
    title: str = "SemiBench results",
    config: Mapping[str, Any] | None = None,
    split: bool = False,
    unreadable: Sequence[str] = (),
    runs_table: bool = True,
) -> ReportView:
    """The view model of the report: every section, formatted once. ``split``: the index
    page of a report with a page per task (:func:`build_task_pages`), its figures linked
    from ``figures/`` beside it instead of embedded. ``runs_table``: False leaves the table
    of every run empty (``summary.md`` does not show it)."""
    colors = algorithm_colors([*data.grid["algorithm"], *data.runs["algorithm"]])
    tasks = sorted(data.domains)
    groups = [r.group for r in data.statistics]
    placed = classify_figures([Path(f) for f in figures], tasks, groups)

    def figure_view(path: Path, kind: str) -> FigureView:
        return embedded_or_linked(path, kind, figure_href(path) if split else None)
    done, expected = data.counts
    paper_views = [PaperView(id=f"paper-{slug(t.group)}",
                             title=DOMAIN_TITLES.get(t.group, t.group),
                             table=_paper_view(t, colors), latex=paper.to_latex(t),
                             markdown=paper.to_markdown(t), last=_paper_view(last, colors))
                   for t, last in zip(data.paper, data.paper_last, strict=True)]
    task_views, diag_views = [], []
    for task in [] if split else tasks:
        main = [figure_view(placed[(k, task)], k) for k in MAIN_FIGURES if (k, task) in placed]
        diag = [figure_view(placed[(k, task)], k) for k in DIAGNOSTIC_FIGURES
                if (k, task) in placed]
        task_views.append(TaskFigures(slug(task), task, data.domains[task], main))
        diag_views.append(TaskFigures(slug(task), task, data.domains[task], diag))
    statistics = _statistics_views(data, colors, placed, figure_view)
    cost_views = _cost_views(data, colors)
    published = _published_view(data, colors)
    missing = data.missing
    error_tables, metric_tables = _metric_tables(
        data, data.summary if data.summary is not None else summarize(data.runs))
    toc = [
        TocEntry("overview", "Overview"),
        TocEntry("results", "Results per domain", [TocEntry(p.id, p.title) for p in paper_views]),
        TocEntry("statistics", "Statistics",
                 [TocEntry(s.id, s.title) for s in statistics]
                 + [TocEntry("paired", f"Paired comparison with {LOWER_BOUND}")]),
        *([TocEntry("tasks", f"Per task ({len(tasks)} pages)")] if split else [
            TocEntry("tasks", "Per task", [TocEntry(f"task-{t.id}", t.name)
                                           for t in task_views]),
            TocEntry("diagnostics", "Diagnostics",
                     [TocEntry(f"diag-{t.id}", t.name) for t in diag_views])]),
        TocEntry("cost", "Cost"),
        *([TocEntry("published", "Published vs ours")] if published else []),
        *([] if split else [TocEntry("runs", f"All runs ({len(data.runs)})"),
                            TocEntry("missing", f"Missing runs ({len(missing)})")]),
        *([TocEntry("other", "Other figures")] if placed[("other", "")] else []),
        *([TocEntry("config", "Configuration")] if config is not None else []),
    ]
    missing_table = None if split else _missing_table(missing, colors)
    cost_figure = placed.get(("cost", ""))
    return ReportView(
        title=title, runs_sentence=describe_runs(data.runs, data.grid),
        complete=data.complete, done=done, expected=expected,
        device_statement=costs.device_statement(data.runs), checkpoints=dict(CHECKPOINTS),
        paper=paper_views, paper_notes=paper.NOTES, statistics=statistics,
        statistics_intro=STATISTICS_INTRO, baseline=LOWER_BOUND, upper_bound=UPPER_BOUND,
        paired_test=PAIRED_TEST, comparisons=_comparison_table(data, colors),
        error_tables=error_tables, metric_tables=metric_tables,
        tasks=task_views, diagnostics=diag_views,
        cost_tables=cost_views, cost_note=COST_NOTE,
        cost_figure=figure_view(cost_figure, "cost") if cost_figure else None,
        published=published,
        runs_table=_runs_table(data.runs.iloc[:0] if split or not runs_table else data.runs,
                               colors, data.metrics),
        missing_count=len(missing), missing_table=missing_table,
        other_figures=[figure_view(p, "other") for p in placed[("other", "")]],
        config=json.dumps(config, indent=2, sort_keys=True, default=str)
        if config is not None else None,
        toc=toc, split=split, task_index=_task_index(data, colors) if split else None,
        unreadable=list(unreadable), has_runs=len(data.runs) > 0,
    )



def build_task_pages(
    data: ReportData,
    figures: Sequence[str | Path] = (),
    title: str = "SemiBench results",
) -> list[TaskPageView]:
    """The pages of a split report, one per task (sorted), beside its index page
    (:func:`build_view` with ``split``): figures linked from ``../figures/``."""
    colors = algorithm_colors([*data.grid["algorithm"], *data.runs["algorithm"]])
    tasks = sorted(data.domains)
    placed = classify_figures([Path(f) for f in figures], tasks,
                              [r.group for r in data.statistics])
    runs_by_task = dict(list(data.runs.groupby("task", sort=False))) if len(data.runs) else {}
    missing_by_task = (dict(list(data.missing.groupby("task", sort=False)))
                       if len(data.missing) else {})
    expected = data.grid.groupby("task").size() if len(data.grid) else pd.Series(dtype=int)
    pages = []
    for task in tasks:
        runs = runs_by_task.get(task, data.runs.iloc[:0])
        missing = missing_by_task.get(task, data.missing.iloc[:0])

        def views(kinds: Sequence[str], task: str = task) -> list[FigureView]:
            return [embedded_or_linked(placed[(k, task)], k, figure_href(placed[(k, task)], 1))
                    for k in kinds if (k, task) in placed]

        pages.append(TaskPageView(
            title=f"{title}: {task}", benchmark_title=title, task=task,
            domain=data.domains[task], done=len(runs),
            expected=max(int(expected.get(task, 0)), len(runs)),
            figures=views(MAIN_FIGURES), diagnostics=views(DIAGNOSTIC_FIGURES),
            runs_table=_runs_table(runs, colors, data.metrics), missing_count=len(missing),
            missing_table=_missing_table(missing, colors),
            toc=[TocEntry("figures", "Figures"), TocEntry("diagnostics", "Diagnostics"),
                 TocEntry("runs", f"All runs ({len(runs)})"),
                 TocEntry("missing", f"Missing runs ({len(missing)})")],
        ))
    return pages
