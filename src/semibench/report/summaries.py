"""What the runs add up to: the expected grid and what is missing from it, the per-cell means
and standard deviations every table shares, and the sentence saying what a report was computed
from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from semibench.report.frames import (
    EXTRA_METRIC_COLUMNS,
    GRID_COLUMNS,
    KEY_COLUMNS,
    SUMMARY_COLUMNS,
    order_algorithms,
    sort_frame,
)


def grid_frame(grid: Iterable[Sequence[Any]], domains: Mapping[str, str]) -> pd.DataFrame:
    """The expected runs (``grid.csv``): (task, num_labels, algorithm, seed) tuples of the
    config, with each task's domain from ``domains``."""
    rows = [
        {"task": str(t), "domain": str(domains[str(t)]), "num_labels": int(n),
         "algorithm": str(a), "seed": int(s)}
        for t, n, a, s in grid
    ]
    frame = pd.DataFrame(rows, columns=list(GRID_COLUMNS))
    if frame.empty:
        frame = frame.astype({"num_labels": "int64", "seed": "int64"})
    return sort_frame(frame, extra=["seed"])


def grid_from_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """When no grid is known, the runs that exist are what was expected."""
    return sort_frame(runs[list(GRID_COLUMNS)].drop_duplicates(), extra=["seed"])


def missing_runs(runs: pd.DataFrame, grid: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``grid`` without a finished run."""
    if grid.empty:
        return grid.copy()
    done = set(runs[list(KEY_COLUMNS)].itertuples(index=False, name=None)) if len(runs) else set()
    keep = [tuple(r) not in done for r in grid[list(KEY_COLUMNS)].itertuples(index=False)]
    return grid.loc[keep].reset_index(drop=True)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std (ddof=1; NaN for one seed) per (task, num_labels, algorithm)."""
    keys = ["task", "num_labels", "algorithm"]
    if runs.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    summary = (
        runs.groupby(keys, sort=False)
        .agg(
            domain=("domain", "first"),
            n_seeds=("seed", "nunique"),
            best_test_error_mean=("best_test_error", "mean"),
            best_test_error_std=("best_test_error", lambda s: s.std(ddof=1)),
            last_test_error_mean=("last_test_error", "mean"),
            last_test_error_std=("last_test_error", lambda s: s.std(ddof=1)),
            wall_time_s_mean=("wall_time_s", "mean"),
            **{f"{column}_{stat}": (column, fn) for column in EXTRA_METRIC_COLUMNS
               if column in runs.columns for stat, fn in _STRICT_STATS.items()},
        )
        .reset_index()
    )
    return sort_frame(summary.reindex(columns=list(SUMMARY_COLUMNS)))


#: mean and std of a metric that some runs of a cell lack (runs older than the metric) are
#: NaN, never the statistic of the runs that have it
_STRICT_STATS: dict[str, Any] = {"mean": lambda s: s.mean(skipna=False),
                                 "std": lambda s: s.std(ddof=1, skipna=False)}


def cells(runs: pd.DataFrame, grid: pd.DataFrame | None = None,
          summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`summarize` for every expected (task, num_labels, algorithm) cell of ``grid``
    (default: the cells that have runs), with ``expected_seeds`` and ``status``: "complete",
    "partial" (fewer seeds than expected) or "missing" (none). A cell is never dropped.
    ``summary``: :func:`summarize` of ``runs``, where the caller has it already."""
    if grid is None:
        grid = grid_from_runs(runs) if len(runs) else pd.DataFrame(columns=list(GRID_COLUMNS))
    keys = ["task", "num_labels", "algorithm"]
    expected = (grid.groupby(keys, sort=False)
                .agg(domain=("domain", "first"), expected_seeds=("seed", "nunique"))
                .reset_index())
    summary = summarize(runs) if summary is None else summary
    if summary.empty:
        summary = pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    merged = expected.merge(summary.drop(columns="domain"), on=keys, how="outer")
    if merged.empty:
        return pd.DataFrame(columns=[*SUMMARY_COLUMNS, "expected_seeds", "status"])
    domain = summary.set_index(keys)["domain"] if len(summary) else pd.Series(dtype=object)
    merged["domain"] = [
        d if isinstance(d, str) else domain.get(tuple(k), "")
        for d, k in zip(merged["domain"], merged[keys].itertuples(index=False), strict=True)
    ]
    merged["n_seeds"] = merged["n_seeds"].fillna(0).astype(int)
    merged["expected_seeds"] = np.maximum(merged["expected_seeds"].fillna(0).astype(int),
                                          merged["n_seeds"])
    merged["status"] = np.where(
        merged["n_seeds"] == 0, "missing",
        np.where(merged["n_seeds"] < merged["expected_seeds"], "partial", "complete"))
    merged["num_labels"] = merged["num_labels"].astype(int)
    return sort_frame(merged[[*SUMMARY_COLUMNS, "expected_seeds", "status"]])


def run_count(runs: pd.DataFrame, grid: pd.DataFrame | None) -> tuple[int, int]:
    """(finished, expected) runs of ``grid`` (without a grid: the runs there are)."""
    if grid is None or grid.empty:
        return len(runs), len(runs)
    return len(grid) - len(missing_runs(runs, grid)), len(grid)


def describe_runs(runs: pd.DataFrame, grid: pd.DataFrame | None = None) -> str:
    """One sentence saying what the report was computed from (all counts from the data)."""
    done, expected = run_count(runs, grid)
    if runs.empty:
        return f"No runs have finished (0 of {expected} runs)." if expected else \
            "No runs were found."
    tasks = sorted(runs["task"].unique())
    algorithms = order_algorithms(runs["algorithm"])
    seeds = sorted(int(s) for s in runs["seed"].unique())
    per_cell = runs.groupby(["task", "num_labels", "algorithm"])["seed"].nunique()
    lo, hi = int(per_cell.min()), int(per_cell.max())
    seeds_per_cell = str(lo) if lo == hi else f"{lo}–{hi}"
    devices = sorted(runs["device"].unique())
    return (
        f"{done} of {expected} runs over {len(tasks)} task{'s' if len(tasks) != 1 else ''} "
        f"({', '.join(tasks)}), {len(algorithms)} algorithm"
        f"{'s' if len(algorithms) != 1 else ''} ({', '.join(algorithms)}) and "
        f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))}); "
        f"seeds per cell: {seeds_per_cell}; total training time "
        f"{runs['wall_time_s'].sum():.1f} s on {', '.join(devices)}."
        + _text_view_note(runs)
    )


def _text_view_note(runs: pd.DataFrame) -> str:
    """Say which text tasks used the token-edit stand-in instead of USB's back-translation."""
    if "text_strong_view" not in runs:
        return ""
    stand_in = runs.loc[runs["text_strong_view"].fillna("").astype(str)
                        .str.startswith("token-edit"), "task"]
    if stand_in.empty:
        return ""
    return (f" Strong text view of {', '.join(sorted(stand_in.unique()))}: the token-edit "
            "stand-in, not USB's back-translation.")
