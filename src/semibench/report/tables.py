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
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from semibench.io import atomic_write_text
from semibench.report import paper
from semibench.report.formatting import format_hours
from semibench.report.frames import CURVE_COLUMNS, KEY_COLUMNS, PER_CLASS_COLUMNS
from semibench.report.layout import PAPER_FORMATS, PAPER_TABLE
from semibench.report.model import ReportData, build
from semibench.report.sensitivity import sensitivity
from semibench.report.stats import statistics_frames
from semibench.report.summaries import summarize
from semibench.report.view import Table, build_view, cost_rows  # noqa: F401

# --------------------------------------------------------------------------- Markdown


def _md_escape(text: object) -> str:
    return str(text).replace("|", "\\|")


def md_table(table: Table, columns: Sequence[str] = (), headers: Sequence[str] = (),
             align: str = "") -> str:
    """A view table as a Markdown pipe table: ``columns`` picks columns by header (default:
    all), ``headers`` renames them, ``align`` gives each column ``l`` or ``r`` (its last letter
    repeats; default: ``r`` for numeric columns); a cell marked best is bold."""
    names = [h.text for h in table.header]
    picked = [names.index(c) for c in columns] if columns else list(range(len(names)))
    header = list(headers) or [names[i] for i in picked]
    if align:
        align = align + align[-1] * (len(picked) - len(align))
    else:
        align = "".join("r" if table.header[i].numeric else "l" for i in picked)
    lines = [
        "| " + " | ".join(_md_escape(h) for h in header) + " |",
        "|" + "|".join("---:" if a == "r" else ":---" for a in align) + "|",
    ]
    for row in table.rows:
        texts = [f"**{c.text}**" if c.mark == "best" else c.text
                 for c in (row.cells[i] for i in picked)]
        lines.append("| " + " | ".join(_md_escape(c) for c in texts) + " |")
    return "\n".join(lines)


_MARKDOWN = jinja2.Environment(
    loader=jinja2.PackageLoader("semibench.report", "templates"),
    autoescape=False, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    keep_trailing_newline=True,
)
_MARKDOWN.filters["md_table"] = md_table


def render_markdown(data: ReportData, title: str = "SemiBench results") -> str:
    """The text of ``summary.md`` (``templates/summary.md.j2``): everything in the HTML page
    except the figures, the list of runs and the configuration."""
    view = build_view(data, title=title, runs_table=False)
    text = _MARKDOWN.get_template("summary.md.j2").render(view=view)
    return text.removesuffix("\n")  # sections end in a blank line; the file in one newline


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
    curves: pd.DataFrame | Sequence[Path] | None = None,
    per_class: pd.DataFrame | Sequence[Path] | None = None,
    title: str = "SemiBench results",
    metrics: Sequence[str] = ("error",),
    tasks: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write every table (see the module docstring) atomically; keys are the file names.

    ``metrics``: the config's ``metrics:`` (each but the error adds per-task tables to
    ``summary.md``; ``runs.csv`` and ``summary.csv`` always hold all of them).
    ``grid``: the configured runs (default: the runs there are); ``curves``/``per_class``:
    :func:`aggregate.collect`'s frames, or the files of their parts, in task order, to be
    written one after the other (:func:`semibench.report.parts.concat_csv`; header only when
    not given); ``published``: the USB
    result tables to set our numbers against, ``tasks`` which of their rows each task's runs
    match (see :func:`build`). The paper tables cover the domains of ``grid``.
    """
    from semibench.report.parts import concat_csv

    out_dir = Path(out_dir)
    data = build(runs, grid, published, metrics, tasks)
    parts = {name: frame for name, frame in (("curves.csv", curves),
                                             ("per_class.csv", per_class))
             if frame is not None and not isinstance(frame, pd.DataFrame)}
    files: dict[str, str] = {
        "runs.csv": _csv(runs),
        "grid.csv": _csv(data.grid),
        "curves.csv": _csv(curves if isinstance(curves, pd.DataFrame)
                           else pd.DataFrame(columns=[*KEY_COLUMNS, *CURVE_COLUMNS])),
        "per_class.csv": _csv(per_class if isinstance(per_class, pd.DataFrame)
                              else pd.DataFrame(columns=list(PER_CLASS_COLUMNS))),
        "summary.csv": _csv(data.summary if data.summary is not None else summarize(runs)),
        "summary.md": render_markdown(data, title),
        "usb_published.csv": _csv(data.published),
        "comparisons.csv": _csv(data.comparisons),
        "cost.csv": _csv(data.cost),
        "sensitivity.csv": _csv(sensitivity(runs)),
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
        if name in parts:
            concat_csv(parts[name], paths[name])
        else:
            atomic_write_text(paths[name], text)
    return paths


__all__ = ["ReportData", "build", "format_hours", "render_markdown", "table_names",
           "write_tables"]
