"""The report of a sweep that is still running: whatever has finished, "n of N runs".

``semibench report --partial --configfile CONFIG`` computes the config's grid (the same
:func:`semibench.config.run_grid` the workflow expands), looks for each run's files where the
workflow writes them (:mod:`semibench.report.layout`) and renders tables, figures and the page
into ``reports/<benchmark>/partial/``, away from the complete report that Snakemake owns. It
does not need the Snakemake lock, so it can run next to a Snakemake that is training. A run
counts as finished when its ``metrics.json`` exists: the trainer writes it last, atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semibench.report import layout
from semibench.report.figures import write_figures
from semibench.report.html import render_html
from semibench.report.reading import collect
from semibench.report.summaries import grid_frame
from semibench.report.tables import build, write_tables


def partial_report(config: dict[str, Any], workdir: str | Path = ".",
                   out_dir: str | Path | None = None) -> Path:
    """Render the report of the finished runs of ``config`` (validated by
    :func:`semibench.config.check_config`); return the page's path."""
    from semibench.config import run_grid
    from semibench.io import atomic_write_text
    from semibench.tasks import create_task
    from semibench.variants import base_task, task_settings

    workdir = Path(workdir)
    benchmark = config["benchmark"]
    grid = run_grid(config)
    domains = {t: create_task(base_task(config, t)).domain for t in config["tasks"]}
    tasks = task_settings(config)
    metrics, curves, benchmarks = [], [], []
    for task, n, alg, seed in grid:
        run_dir = workdir / layout.run_dir(benchmark, task, n, alg, seed)
        if (run_dir / "metrics.json").is_file():
            metrics.append(run_dir / "metrics.json")
            curves.append(run_dir / "curve.csv")
            benchmarks.append(workdir / layout.train_benchmark(benchmark, task, n, alg, seed))
    results = collect(metrics, curves, benchmarks)
    expected = grid_frame(grid, domains)
    published = list(config.get("published_reference") or [])
    out = Path(out_dir) if out_dir else workdir / layout.PARTIAL_DIR.format(benchmark=benchmark)
    done = len(results.runs)
    title = f"SemiBench: {benchmark} (partial: {done} of {len(grid)} runs)"
    write_tables(results.runs, out / "tables", published=published, grid=expected,
                 curves=results.curves, per_class=results.per_class, title=title,
                 metrics=config.get("metrics", ("error",)), tasks=tasks)
    data = build(results.runs, expected, published, config.get("metrics", ("error",)), tasks)
    figures = write_figures(results.runs, results.curves, results.per_class, out / "figures",
                            grid=expected, statistics=data.statistics,
                            cd_groups=layout.testable_groups(grid, domains))
    page = out / "index.html"
    atomic_write_text(page, render_html(data, figures, title, config))
    return page
