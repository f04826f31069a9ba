"""Every table of the report, computed once (:func:`build`) and written as files.

:func:`write_tables` writes, into one folder: the data (``runs.csv``, ``grid.csv`` = the
configured runs, ``curves.csv``, ``per_class.csv``), the paper tables per domain
(``paper_<domain>.csv/.md/.tex``), the statistics (``statistics.csv``,
``statistics_ranks.csv``, ``statistics_posthoc.csv``), the paired comparisons
(``comparisons.csv``), the cost (``cost.csv``), USB's published numbers next to ours
(``usb_published.csv``), the per-cell summary (``summary.csv``) and all of it as Markdown
(``summary.md``). Floats in CSVs keep full precision; only Markdown, LaTeX and HTML round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from semibench.io import atomic_write_text
from semibench.report import cost as costs
from semibench.report import paper
from semibench.report import published as usb
from semibench.report.aggregate import PAIRED_TEST, compare_to_baseline, format_test_p
from semibench.report.formatting import (
    CHECKPOINTS,
    MISSING_CELL,
    error_table,
    format_cell,
    format_diff,
    format_hours,
    plural,
)
from semibench.report.frames import (
    CURVE_COLUMNS,
    GRID_COLUMNS,
    KEY_COLUMNS,
    METRIC_TITLES,
    PER_CLASS_COLUMNS,
)
from semibench.report.layout import (
    DOMAIN_TITLES,
    LOWER_BOUND,
    PAPER_FORMATS,
    PAPER_TABLE,
    UPPER_BOUND,
)
from semibench.report.stats import FriedmanResult, friedman_groups, statistics_frames
from semibench.report.summaries import (
    cells,
    describe_runs,
    grid_from_runs,
    missing_runs,
    run_count,
    summarize,
)


@dataclass(frozen=True)
class ReportData:
    """What every rendering of the report shows, computed from the runs and the grid."""

    runs: pd.DataFrame
    grid: pd.DataFrame
    cells: pd.DataFrame
    domains: dict[str, str]
    paper: list[paper.PaperTable]
    paper_last: list[paper.PaperTable]
    statistics: list[FriedmanResult]
    comparisons: pd.DataFrame
    cost: pd.DataFrame
    published: pd.DataFrame
    published_tables: tuple[str, ...]
    missing: pd.DataFrame
    #: the config's ``metrics:``; every metric but the error gets its own per-task tables
    metrics: tuple[str, ...] = ("error",)

    @property
    def counts(self) -> tuple[int, int]:
        """(finished, configured) runs."""
        return run_count(self.runs, self.grid)

    @property
    def complete(self) -> bool:
        done, expected = self.counts
        return done == expected


def _domains(grid: pd.DataFrame, runs: pd.DataFrame) -> dict[str, str]:
    pairs = pd.concat([grid[["task", "domain"]], runs[["task", "domain"]]])
    return {str(t): str(d) for t, d in pairs.drop_duplicates("task").itertuples(index=False)}


def build(runs: pd.DataFrame, grid: pd.DataFrame | None = None,
          published: Sequence[str] = (), metrics: Sequence[str] = ("error",),
          tasks: Mapping[str, Mapping[str, Any]] | None = None) -> ReportData:
    """All tables of the report. ``grid`` (``grid.csv``): the configured runs; without it,
    the runs that exist are taken as everything that was configured. ``tasks``: each
    configured task's registered task and long-tailed setting
    (:func:`semibench.variants.task_settings`), which USB's published rows match."""
    if grid is None:
        grid = grid_from_runs(runs) if len(runs) else pd.DataFrame(columns=list(GRID_COLUMNS))
    all_cells = cells(runs, grid)
    domains = _domains(grid, runs)
    return ReportData(
        runs=runs, grid=grid, cells=all_cells, domains=domains,
        paper=paper.paper_tables(all_cells, domains, "best"),
        paper_last=paper.paper_tables(all_cells, domains, "last"),
        statistics=friedman_groups(all_cells, domains),
        comparisons=compare_to_baseline(runs),
        cost=costs.cost_frame(runs),
        published=usb.compare_to_published(all_cells, published, tasks),
        published_tables=tuple(published),
        missing=missing_runs(runs, grid),
        metrics=tuple(metrics),
    )


# --------------------------------------------------------------------------- Markdown


def _md_escape(text: object) -> str:
    return str(text).replace("|", "\\|")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> str:
    lines = [
        "| " + " | ".join(_md_escape(h) for h in header) + " |",
        "|" + "|".join("---:" if a == "r" else ":---" for a in align) + "|",
    ]
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _statistics_markdown(data: ReportData) -> list[str]:
    parts = ["## Statistics across settings", "",
             "Friedman test over the settings (task × label budget) of each domain and of all "
             "of them, Nemenyi post-hoc test, critical difference (Demšar 2006); algorithms "
             "ranked by mean test error at the best-validation checkpoint.", ""]
    for r in data.statistics:
        parts += [f"### {r.title}", "", r.message, ""]
        if r.excluded:
            parts += [f"Not in the test (not configured on every setting of this group): "
                      f"{', '.join(r.excluded)}.", ""]
        if len(r.mean_ranks):
            rows = [[a, f"{v:.2f}"] for a, v in r.mean_ranks.sort_values().items()]
            parts += [_md_table(["algorithm", f"mean rank over {plural(len(r.settings), 'setting')}"],
                                rows, ["l", "r"]), ""]
    return parts


def _comparison_markdown(data: ReportData) -> list[str]:
    parts = [f"## Paired comparison with {LOWER_BOUND}", ""]
    if data.comparisons.empty:
        return parts + [f"No {LOWER_BOUND} runs, and no imbalance method beside its base, to "
                        "compare with.", ""]
    parts += [f"Difference in test error at the best-validation checkpoint (algorithm − "
              f"baseline: {LOWER_BOUND}, or for an imbalance method `<base>_<method>` its base; "
              f"percentage points; negative = better). Test: {PAIRED_TEST}.", ""]
    rows = [[str(r.task), str(r.num_labels), str(r.algorithm), str(r.baseline),
             str(r.n_shared_seeds),
             format_diff(r.mean_difference), format_test_p(r.p_value, r.n_shared_seeds),
             format_test_p(r.p_holm, r.n_shared_seeds)]
            for r in data.comparisons.itertuples(index=False)]
    header = ["task", "labels", "algorithm", "baseline", "shared seeds", "mean difference",
              "p-value", "Holm p-value"]
    return parts + [_md_table(header, rows, ["l", "r", "l", "l", "r", "r", "r", "r"]), ""]


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


def _cost_markdown(data: ReportData) -> list[str]:
    parts = ["## Cost", "", costs.device_statement(data.runs), ""]
    if data.runs.empty:
        return parts
    for keys, title in ((["algorithm"], "Per algorithm"), (["task"], "Per task")):
        header, rows = cost_rows(costs.cost_table(data.runs, keys), keys)
        parts += [f"### {title}", "", _md_table(header, rows, ["l"] + ["r"] * (len(header) - 1)),
                  ""]
    return parts


def _published_markdown(data: ReportData) -> list[str]:
    if not data.published_tables:
        return []
    parts = [f"## USB's published error rates ({', '.join(data.published_tables)})", "",
             usb.NOTE, "", usb.summary_line(data.published), ""]
    if data.published.empty:
        return parts
    rows = [[str(r.task), str(r.num_labels), str(r.algorithm),
             format_cell(r.ours_mean, r.ours_std) if r.n_seeds else "missing",
             format_cell(r.usb_mean, r.usb_std), format_diff(r.difference),
             {True: "yes", False: "no"}.get(r.within_2std, "n/a")]
            for r in data.published.itertuples(index=False)]
    header = ["task", "labels", "algorithm", "ours", "USB", "difference",
              "inside USB ± 2 std"]
    return parts + [_md_table(header, rows, ["l", "r", "l", "r", "r", "r", "l"]), ""]


def _metric_markdown(data: ReportData, summary: pd.DataFrame) -> list[str]:
    """Per-task tables of the metrics besides the error that ``metrics:`` asks for."""
    parts: list[str] = []
    for metric in (m for m in data.metrics if m != "error"):
        best = "highest" if metric == "macro_f1" else "lowest"
        parts += [f"## {METRIC_TITLES[metric]} at the checkpoint with the lowest validation "
                  "error, per task", "",
                  f"Cells: mean ± std over seeds. Bold: {best} mean per label budget, ignoring "
                  f"{UPPER_BOUND}." + (" Top-5 error is not defined for 5 classes or fewer "
                                       f"({MISSING_CELL})." if metric == "top5_error" else ""),
                  ""]
        for task in sorted(summary["task"].unique()) if len(summary) else []:
            cells_, bold = error_table(summary, task, "best", metric)
            header = ["algorithm", *(f"{b} labels" for b in cells_.columns)]
            rows = [[str(a), *(f"**{cells_.at[a, b]}**" if bold.at[a, b] else cells_.at[a, b]
                               for b in cells_.columns)] for a in cells_.index]
            parts += [f"### {task} ({data.domains.get(task, '')})", "",
                      _md_table(header, rows, ["l", *("r" for _ in cells_.columns)]), ""]
    return parts


def render_markdown(data: ReportData, title: str = "SemiBench results") -> str:
    """The text of ``summary.md``: everything in the HTML page except the figures."""
    done, expected = data.counts
    parts = [f"# {title}", ""]
    if not data.complete:
        parts += [f"**Partial report: {done} of {expected} runs finished.** Missing cells are "
                  "marked.", ""]
    parts += [describe_runs(data.runs, data.grid), "", costs.device_statement(data.runs), ""]
    parts += [f"## {CHECKPOINTS['best']}, per domain", "", paper.NOTES, ""]
    for table in data.paper:
        parts += [f"### {DOMAIN_TITLES.get(table.group, table.group)}", "",
                  paper.to_markdown(table), ""]
    parts += _statistics_markdown(data)
    parts += _comparison_markdown(data)
    summary = summarize(data.runs)
    for which, heading in CHECKPOINTS.items():
        parts += [f"## {heading}, per task", "",
                  f"Cells: mean ± std over seeds (sample std). Bold: lowest mean per label "
                  f"budget, ignoring {UPPER_BOUND} (an upper bound trained on all labels).", ""]
        for task in sorted(summary["task"].unique()) if len(summary) else []:
            cells_, bold = error_table(summary, task, which)
            header = ["algorithm", *(f"{b} labels" for b in cells_.columns)]
            rows = [[str(a), *(f"**{cells_.at[a, b]}**" if bold.at[a, b] else cells_.at[a, b]
                               for b in cells_.columns)] for a in cells_.index]
            parts += [f"### {task} ({data.domains.get(task, '')})", "",
                      _md_table(header, rows, ["l", *("r" for _ in cells_.columns)]), ""]
    parts += _metric_markdown(data, summary)
    parts += _cost_markdown(data)
    parts += _published_markdown(data)
    if len(data.missing):
        rows = [[str(r.task), str(r.num_labels), str(r.algorithm), str(r.seed)]
                for r in data.missing.itertuples(index=False)]
        parts += [f"## Missing runs ({len(data.missing)})", "",
                  _md_table(["task", "labels", "algorithm", "seed"], rows, ["l", "r", "l", "r"]),
                  ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------- files


def table_names(domains: Sequence[str]) -> list[str]:
    """Every file :func:`write_tables` writes, for a benchmark with these domains."""
    from semibench.report.layout import DATA_TABLES, RESULT_TABLES

    return [*DATA_TABLES, *RESULT_TABLES,
            *(f"{PAPER_TABLE.format(group=d)}.{ext}" for d in sorted(set(domains))
              for ext in PAPER_FORMATS)]


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def write_tables(
    runs: pd.DataFrame,
    out_dir: str | Path,
    published: Sequence[str] = (),
    grid: pd.DataFrame | None = None,
    curves: pd.DataFrame | None = None,
    per_class: pd.DataFrame | None = None,
    title: str = "SemiBench results",
    metrics: Sequence[str] = ("error",),
    tasks: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write every table (see the module docstring) atomically; keys are the file names.

    ``metrics``: the config's ``metrics:`` (each but the error adds per-task tables to
    ``summary.md``; ``runs.csv`` and ``summary.csv`` always hold all of them).
    ``grid``: the configured runs (default: the runs there are); ``curves``/``per_class``:
    :func:`aggregate.collect`'s frames (header only when not given); ``published``: the USB
    result tables to set our numbers against, ``tasks`` which of their rows each task's runs
    match (see :func:`build`). The paper tables cover the domains of ``grid``.
    """
    out_dir = Path(out_dir)
    data = build(runs, grid, published, metrics, tasks)
    files: dict[str, str] = {
        "runs.csv": _csv(runs),
        "grid.csv": _csv(data.grid),
        "curves.csv": _csv(curves if curves is not None
                           else pd.DataFrame(columns=[*KEY_COLUMNS, *CURVE_COLUMNS])),
        "per_class.csv": _csv(per_class if per_class is not None
                              else pd.DataFrame(columns=list(PER_CLASS_COLUMNS))),
        "summary.csv": _csv(summarize(runs)),
        "summary.md": render_markdown(data, title),
        "usb_published.csv": _csv(data.published),
        "comparisons.csv": _csv(data.comparisons),
        "cost.csv": _csv(data.cost),
        **{name: _csv(frame) for name, frame in statistics_frames(data.statistics).items()},
    }
    for table in data.paper:
        stem = PAPER_TABLE.format(group=table.group)
        files[f"{stem}.csv"] = _csv(paper.to_frame(table))
        files[f"{stem}.md"] = (f"## {table.title}\n\n{paper.to_markdown(table)}\n\n"
                               f"{paper.NOTES}\n")
        files[f"{stem}.tex"] = paper.to_latex(table)
    paths = {}
    for name, text in files.items():
        paths[name] = out_dir / name
        atomic_write_text(paths[name], text)
    return paths


__all__ = ["ReportData", "build", "format_hours", "render_markdown", "table_names",
           "write_tables"]
