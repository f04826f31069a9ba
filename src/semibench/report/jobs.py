"""The report's Snakemake jobs, one function each, called by the rules' scripts
(``workflow/scripts/*.py``, Snakemake's ``script:`` directive) with the job's files as Python
lists: no command line, so no sweep is too large for them (Linux refuses an argument over
128 KiB and a command line over about 2 MiB).

* :func:`aggregate_task`: one task's runs -> its part of the tables (``tables/tasks/<task>/``);
* :func:`aggregate`: the parts -> the benchmark's tables;
* :func:`task_figures`: one task's part -> its figures;
* :func:`group_figures`: the benchmark's tables -> the critical-difference and cost figures;
* :func:`report`: the tables and figures -> the page (or the index page and a page per task).

Each runs inside :func:`job`, which sends its diagnostics to the rule's log (as ``2> {log}``
does for a shell command) and turns a fault of the inputs into one line there and exit
status 1, as the ``semibench`` command does.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from semibench.errors import SemiBenchError


@contextlib.contextmanager
def job(log: str | Path, name: str) -> Iterator[None]:
    """Run a job's body with stderr and the ``semibench`` loggers in ``log``."""
    from semibench.log import configure

    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as stream, contextlib.redirect_stderr(stream):
        configure()
        try:
            yield
        except SemiBenchError as err:
            print(f"semibench {name}: error: {err}", file=sys.stderr)
            raise SystemExit(1) from None
        except BaseException:
            traceback.print_exc()
            raise


def aggregate_task(task: str, domain: str, runs: Sequence[Sequence[Any]],
                   metrics: Sequence[str], curves: Sequence[str], benchmarks: Sequence[str],
                   out_dir: str) -> None:
    """``runs``: the task's configured runs, in the order of the three file lists."""
    from semibench.report.parts import aggregate_task as read_task

    read_task(task, domain, out_dir, metrics, curves, benchmarks, grid=runs)


def aggregate(task_dirs: Sequence[str], out_dir: str, published: Sequence[str], title: str,
              metrics: Sequence[str], tasks: Mapping[str, Mapping[str, Any]]) -> None:
    from semibench.report.parts import merge_tasks

    merge_tasks(task_dirs, out_dir, published, title, metrics, tasks)


def task_figures(task: str, tables: str, out_dir: str, algorithms: Sequence[str]) -> None:
    """``tables``: the task's part (runs.csv, grid.csv, curves.csv, per_class.csv)."""
    import pandas as pd

    from semibench.report.figures import write_task_figures
    from semibench.report.parts import read_table

    part = Path(tables)
    write_task_figures(task, read_table(part / "runs.csv"), pd.read_csv(part / "curves.csv"),
                       pd.read_csv(part / "per_class.csv"), out_dir,
                       grid=read_table(part / "grid.csv"), algorithms=algorithms)


def group_figures(runs: str, grid: str, out_dir: str, cd_groups: Sequence[str]) -> None:
    from semibench.report.figures import write_group_figures
    from semibench.report.model import statistics
    from semibench.report.parts import read_table

    runs_frame, grid_frame = read_table(runs), read_table(grid)
    write_group_figures(runs_frame, out_dir, grid_frame, statistics(runs_frame, grid_frame),
                        cd_groups)


def report(runs: str, grid: str, figures: Sequence[str], out_html: str, title: str,
           config_json: str, published: Sequence[str], metrics: Sequence[str],
           split: bool) -> None:
    from semibench.report.html import write_report
    from semibench.report.model import build
    from semibench.report.parts import read_table
    from semibench.variants import task_settings

    config = json.loads(config_json)
    data = build(read_table(runs), read_table(grid), published, metrics, task_settings(config))
    write_report(data, figures, out_html, title, config, split=split)
