"""What every rendering of the report shows, computed once from the runs and the grid
(:func:`build`): the tables the CSV, Markdown, LaTeX and HTML files are written from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from semibench.report import cost as costs
from semibench.report import paper
from semibench.report import published as usb
from semibench.report.aggregate import compare_to_baseline
from semibench.report.frames import GRID_COLUMNS
from semibench.report.stats import FriedmanResult, friedman_groups
from semibench.report.summaries import (
    cells,
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
    #: :func:`semibench.report.summaries.summarize` of the runs (``summary.csv``)
    summary: pd.DataFrame | None = None

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
    summary = summarize(runs)
    all_cells = cells(runs, grid, summary)
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
        metrics=tuple(metrics), summary=summary,
    )


def statistics(runs: pd.DataFrame, grid: pd.DataFrame | None = None) -> list[FriedmanResult]:
    """:func:`build`'s statistics alone (the critical-difference diagrams need no more)."""
    if grid is None:
        grid = grid_from_runs(runs) if len(runs) else pd.DataFrame(columns=list(GRID_COLUMNS))
    return friedman_groups(cells(runs, grid), _domains(grid, runs))
