"""The report's tables in parts, so that their cost grows gently with a sweep.

Each task's runs are read on their own (:func:`aggregate_task`): its ``runs.csv``,
``grid.csv``, ``curves.csv`` and ``per_class.csv`` go under ``tables/tasks/<task>/``
(:data:`semibench.report.layout.TASK_TABLES_DIR`). The benchmark's tables are then merged from
those parts (:func:`merge_tasks`), never from the runs' files: the statistics and paper tables
need every task but only one row per run, and ``curves.csv`` and ``per_class.csv`` are the
parts one after the other (every table is sorted by task first, so the order is the one a
single read of every run gives). A changed run is read again with its task alone.

Nothing here imports the statistics or plotting stack until the merge needs it, so that a
task's job starts in well under a second.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from semibench.io import atomic_path, atomic_write_text
from semibench.report.frames import GRID_COLUMNS, sort_frame
from semibench.report.layout import TASK_TABLES
from semibench.report.reading import Results, RunUnreadable, collect, run_name
from semibench.report.summaries import grid_frame

#: text columns of runs.csv that are "" for none (pandas reads an empty cell as NaN)
TEXT_COLUMNS: tuple[str, ...] = ("device", "precision", "text_strong_view", "base_algorithm",
                                 "imbalance", "sweep")


def csv_text(frame: pd.DataFrame) -> str:
    """A frame as every table of the report is written: no index, ``\\n`` line ends."""
    return frame.to_csv(index=False, lineterminator="\n")


def read_table(path: str | Path) -> pd.DataFrame:
    """``runs.csv`` or ``grid.csv`` as the report reads it back: text columns as text ("" for
    none)."""
    frame = pd.read_csv(path, keep_default_na=True,
                        dtype={c: str for c in TEXT_COLUMNS})
    for column in ("text_strong_view", "precision"):
        if column in frame:
            frame[column] = frame[column].fillna("")
    return frame


def aggregate_task(
    task: str,
    domain: str,
    out_dir: str | Path,
    metrics: Sequence[str | Path],
    curves: Sequence[str | Path] = (),
    benchmarks: Sequence[str | Path] = (),
    grid: Sequence[Sequence[Any]] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> Results:
    """Read one task's runs (the files named, in the order of ``grid`` when it is given) and
    write its part of the tables (:data:`TASK_TABLES`) into ``out_dir``. ``grid``: the task's
    configured runs (default: the runs read). A fault names the file and the run
    (:func:`semibench.report.reading.collect`; with ``on_error`` the run is left out), and so
    does a run that records another task."""
    keys = [tuple(run) for run in grid] if grid is not None and len(grid) == len(metrics) else ()
    results = collect(metrics, curves, benchmarks, keys=keys, on_error=on_error)
    other = results.runs.loc[results.runs["task"] != task]
    if len(other):
        row = other.iloc[0]
        key = [row[k] for k in ("task", "num_labels", "algorithm", "seed")]
        raise RunUnreadable(f"run {run_name(key)}: {row['metrics_path']} records task "
                            f"{row['task']!r}, not {task!r}")
    expected = (grid_frame(grid, {task: domain}) if grid is not None
                else sort_frame(results.runs[list(GRID_COLUMNS)], extra=["seed"]))
    out_dir = Path(out_dir)
    for name, frame in zip(TASK_TABLES, (results.runs, expected, results.curves,
                                          results.per_class), strict=True):
        atomic_write_text(out_dir / name, csv_text(frame))
    return results


def write_parts(results: Results, out_dir: str | Path,
                grid: pd.DataFrame | None = None) -> list[Path]:
    """Split what :func:`semibench.report.reading.collect` read into the tasks' parts, as
    :func:`aggregate_task` writes them, under ``out_dir/<task>/``; ``grid``: the configured
    runs (default: the runs read). Returns the tasks' folders, sorted by task."""
    if grid is None:
        grid = sort_frame(results.runs[list(GRID_COLUMNS)], extra=["seed"])
    tasks = sorted({str(t) for t in grid["task"]} | {str(t) for t in results.runs["task"]})
    frames = {"runs.csv": results.runs, "grid.csv": grid, "curves.csv": results.curves,
              "per_class.csv": results.per_class}
    by_task = {name: dict(list(frame.groupby("task", sort=False))) if len(frame) else {}
               for name, frame in frames.items()}
    dirs = []
    for task in tasks:
        folder = Path(out_dir) / task
        for name, frame in frames.items():
            part = by_task[name].get(task, frame.iloc[:0])
            atomic_write_text(folder / name, csv_text(part.reset_index(drop=True)))
        dirs.append(folder)
    return dirs


def concat_csv(parts: Sequence[str | Path], out: str | Path) -> Path:
    """Write the CSV files ``parts`` (same header) one after the other, the header once."""
    out = Path(out)
    with atomic_path(out) as tmp, open(tmp, "wb") as sink:
        for i, part in enumerate(parts):
            with open(part, "rb") as source:
                header = source.readline()
                if i == 0:
                    sink.write(header)
                shutil.copyfileobj(source, sink, 1 << 20)
    return out


def read_parts(task_dirs: Sequence[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every task's ``runs.csv`` and ``grid.csv`` as the benchmark's (runs, grid)."""
    def read_all(name: str) -> pd.DataFrame:
        frames = [read_table(Path(d) / name) for d in task_dirs]
        frames = [f for f in frames if len(f)] or frames[:1]
        return sort_frame(pd.concat(frames, ignore_index=True), extra=["seed"])

    runs, grid = read_all("runs.csv"), read_all("grid.csv")
    for column in TEXT_COLUMNS:
        if column in runs:
            runs[column] = runs[column].fillna("")
    return runs, grid


def merge_tasks(
    task_dirs: Sequence[str | Path],
    out_dir: str | Path,
    published: Sequence[str] = (),
    title: str = "SemiBench results",
    metrics: Sequence[str] = ("error",),
    tasks: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Path]:
    """The benchmark's tables (:func:`semibench.report.tables.write_tables`) from the tasks'
    parts in ``task_dirs`` (sorted by task here)."""
    from semibench.report.tables import write_tables

    task_dirs = sorted((Path(d) for d in task_dirs), key=lambda d: d.name)
    if task_dirs:
        runs, grid = read_parts(task_dirs)
    else:  # nothing configured, nothing read: every table with its header only
        runs, grid = collect([]).runs, grid_frame([], {})
    return write_tables(runs, out_dir, published=published, grid=grid, title=title,
                        metrics=metrics, tasks=tasks,
                        curves=[d / "curves.csv" for d in task_dirs],
                        per_class=[d / "per_class.csv" for d in task_dirs])
