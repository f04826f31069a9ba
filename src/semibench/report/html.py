"""The report page: one self-contained HTML file rendered from a Jinja2 template, or for a
large sweep an index page and a page per task (:func:`write_report`).

Self-contained: inline CSS, figures as base64 data URIs, one inline script (the table
sorter, and the filter and pages of a long table), no external URL, so that the page can be
archived, mailed or attached to a Snakemake report and still render offline. A split report
is a folder instead (the pages, ``figures/``), with the same inline CSS and script. All text is escaped by the template (autoescape). The page renders the
report's view model (:mod:`semibench.report.view`, built from
:class:`semibench.report.model.ReportData`), the same one ``summary.md`` renders, so the page,
the Markdown, the CSV and LaTeX files hold the same numbers; figures are exactly the files the
caller names, placed by their names.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from semibench.io import atomic_path, atomic_write_text
from semibench.report.layout import PAGE_FIGURES_DIR, TASK_PAGE
from semibench.report.model import ReportData, build
from semibench.report.placement import CAPTIONS, classify_figures  # noqa: F401
from semibench.report.view import (  # noqa: F401
    COST_NOTE,
    STATISTICS_INTRO,
    build_task_pages,
    build_view,
)
from semibench.variants import task_settings

_HTML = jinja2.Environment(
    loader=jinja2.PackageLoader("semibench.report", "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=False,
    keep_trailing_newline=True,
)


def _render(template: str, view: Any) -> str:
    return _HTML.get_template(template).render(
        {f.name: getattr(view, f.name) for f in dataclasses.fields(view)})


def render_html(
    data: ReportData,
    figures: Sequence[str | Path],
    title: str,
    config: Mapping[str, Any] | None = None,
    split: bool = False,
    unreadable: Sequence[str] = (),
) -> str:
    """The page as a string (see :func:`write_html`); ``split``: the index page of
    :func:`write_report`'s pages; ``unreadable``: runs left out, one line each."""
    return _render("report.html.j2", build_view(data, figures, title, config, split=split,
                                                unreadable=unreadable))


def write_report(
    data: ReportData,
    figures: Sequence[str | Path],
    out_html: str | Path,
    title: str,
    config: Mapping[str, Any] | None = None,
    split: bool = False,
    unreadable: Sequence[str] = (),
) -> list[Path]:
    """Write the report: one self-contained page ``out_html``, or with ``split`` (a large
    sweep, :func:`semibench.report.layout.split_pages`) an index page there, a page per task
    in ``tasks/`` beside it and the figures copied into ``figures/`` beside it, linked from
    the pages and loaded as they scroll into view. ``unreadable``: runs left out (a partial
    report), one line each, listed on the (index) page. Returns the files written: the
    page(s), then the copied figures."""
    out_html = Path(out_html)
    if not split:
        atomic_write_text(out_html, render_html(data, figures, title, config,
                                                unreadable=unreadable))
        return [out_html]
    copies = []
    for figure in map(Path, figures):
        copy = out_html.parent / PAGE_FIGURES_DIR / figure.name
        if not (copy.exists() and copy.samefile(figure)):
            with atomic_path(copy) as tmp:
                shutil.copyfile(figure, tmp)
        copies.append(copy)
    pages = []
    for view in build_task_pages(data, copies, title):
        page = out_html.parent / TASK_PAGE.format(task=view.task)
        atomic_write_text(page, _render("task.html.j2", view))
        pages.append(page)
    atomic_write_text(out_html, render_html(data, copies, title, config, split=True,
                                            unreadable=unreadable))
    return [out_html, *pages, *copies]


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
