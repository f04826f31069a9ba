"""The report page: one self-contained HTML file rendered from a Jinja2 template.

Self-contained: inline CSS, figures as base64 data URIs, one inline script (the table
sorter), no external URL, so that the page can be archived, mailed or attached to a Snakemake
report and still render offline. All text is escaped by the template (autoescape). The page renders the
report's view model (:mod:`semibench.report.view`, built from
:class:`semibench.report.model.ReportData`), the same one ``summary.md`` renders, so the page,
the Markdown, the CSV and LaTeX files hold the same numbers; figures are exactly the files the
caller names, placed by their names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from semibench.io import atomic_write_text
from semibench.report.model import ReportData, build
from semibench.report.placement import CAPTIONS, classify_figures  # noqa: F401
from semibench.report.view import COST_NOTE, STATISTICS_INTRO, build_view  # noqa: F401
from semibench.variants import task_settings

_HTML = jinja2.Environment(
    loader=jinja2.PackageLoader("semibench.report", "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=False,
    keep_trailing_newline=True,
)


def render_html(
    data: ReportData,
    figures: Sequence[str | Path],
    title: str,
    config: Mapping[str, Any] | None = None,
) -> str:
    """The page as a string (see :func:`write_html`)."""
    view = build_view(data, figures, title, config)
    return _HTML.get_template("report.html.j2").render(
        {f.name: getattr(view, f.name) for f in dataclasses.fields(view)})


def write_html(
    runs: pd.DataFrame,
    figures: Sequence[str | Path],
    out_html: str | Path,
    title: str,
    config: Mapping[str, Any] | None = None,
    published: Sequence[str] = (),
    grid: pd.DataFrame | None = None,
) -> Path:
    """Write the self-contained report page atomically and return its path.

    ``figures``: the PNGs to embed, placed by their file names (a task's figures in its
    sections, ``cd_<group>`` with its statistics, ``cost_pareto`` with the cost; any other
    under "Other figures"); ``grid``: the configured runs (the page says "n of N runs" and
    marks what is missing); ``config`` is shown as sorted JSON; ``published`` names the USB
    result tables to set our numbers against. Nothing is time-stamped, so the same inputs
    give the same page.
    """
    out_html = Path(out_html)
    data = build(runs, grid, published, tasks=task_settings(config) if config else None)
    atomic_write_text(out_html, render_html(data, figures, title, config))
    return out_html
