"""The report of a sweep that is still running: whatever has finished, "n of N runs".

``semibench report --partial --configfile CONFIG`` computes the config's grid (the same
:func:`semibench.config.run_grid` the workflow expands), looks for each run's files where the
workflow writes them (:mod:`semibench.report.layout`) and renders tables, figures and the page
into ``reports/<benchmark>/partial/``, away from the complete report that Snakemake owns. It
does not need the Snakemake lock, so it can run next to a Snakemake that is training. A run
counts as finished when its ``metrics.json`` exists: the trainer writes it last, atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from semibench.report import layout
from semibench.report.figures import write_figures
from semibench.report.html import write_report
from semibench.report.parts import merge_tasks, write_parts
from semibench.report.reading import collect
from semibench.report.summaries import grid_frame
from semibench.report.tables import build

logger = logging.getLogger(__name__)


def partial_report(config: dict[str, Any], workdir: str | Path = ".",
                   out_dir: str | Path | None = None) -> Path:
    """Render the report of the finished runs of ``config`` (validated by
    :func:`semibench.config.check_config`); return the page's path. A run whose files
    cannot be read (a corrupt ``metrics.json``, a truncated curve) is left out with one
    warning naming the file and the run, and the page lists it; the rest is reported."""
    from semibench.config import run_grid
    from semibench.tasks import create_task
    from semibench.variants import base_task, task_settings

    workdir = Path(workdir)
    benchmark = config["benchmark"]
    grid = run_grid(config)
    domains = {t: create_task(base_task(config, t)).domain for t in config["tasks"]}
    tasks = task_settings(config)
    metrics, curves, benchmarks, keys = [], [], [], []
    for task, n, alg, seed in grid:
        run_dir = workdir / layout.run_dir(benchmark, task, n, alg, seed)
        if (run_dir / "metrics.json").is_file():
            metrics.append(run_dir / "metrics.json")
            curves.append(run_dir / "curve.csv")
            benchmarks.append(workdir / layout.train_benchmark(benchmark, task, n, alg, seed))
            keys.append((task, n, alg, seed))
    results = collect(metrics, curves, benchmarks, keys=keys, on_error=logger.warning)
    expected = grid_frame(grid, domains)
    published = list(config.get("published_reference") or [])
    out = Path(out_dir) if out_dir else workdir / layout.PARTIAL_DIR.format(benchmark=benchmark)
    done = len(results.runs)
    title = f"SemiBench: {benchmark} (partial: {done} of {len(grid)} runs)"
    shown = config.get("metrics", ("error",))
    parts = write_parts(results, out / "tables" / "tasks", expected)
    merge_tasks(parts, out / "tables", published=published, title=title, metrics=shown,
                tasks=tasks)
    data = build(results.runs, expected, published, shown, tasks)
    figures = write_figures(results.runs, results.curves, results.per_class, out / "figures",
                            grid=expected, statistics=data.statistics,
                            cd_groups=layout.testable_groups(grid, domains))
    split = layout.split_pages(len(grid), len(domains), config.get("report"))
    page = out / "index.html"
    write_report(data, figures, page, title, config, split=split, unreadable=results.problems)
    return page
