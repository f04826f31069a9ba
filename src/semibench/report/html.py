"""A single self-contained HTML report: tables, paired comparison, figures and every run.

Self-contained (inline CSS, images as base64 data URIs, no scripts, no external URLs) so that
the page can be archived, mailed or attached to a Snakemake report and still render offline.
Tables are rendered from the data frames of :mod:`semibench.report.aggregate`, not parsed
back from Markdown, and all text is HTML-escaped.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from semibench.io import atomic_write_text
from semibench.report import published as usb
from semibench.report.aggregate import (
    CHECKPOINTS,
    LOWER_BOUND,
    UPPER_BOUND,
    compare_to_baseline,
    describe_runs,
    error_table,
    format_cell,
    format_diff,
    format_p,
    summarize,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
p.note { color: #555; }
table { border-collapse: collapse; margin: 0.8em 0 1.2em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
nav ul { columns: 2; }
"""


def _table_html(frame: pd.DataFrame, **kwargs: Any) -> str:
    """pandas ``to_html`` with escaping on and stable, style-free markup."""
    return frame.to_html(border=0, classes="data", na_rep="n/a", escape=True, **kwargs)


def _error_table_html(summary: pd.DataFrame, task: str, which: str) -> str:
    """One task's "mean ± std" table; cells are escaped here so that bold can be added."""
    cells, bold = error_table(summary, task, which)
    marked = pd.DataFrame(
        [
            [
                f"<strong>{escape(cells.at[a, b])}</strong>"
                if bold.at[a, b]
                else escape(cells.at[a, b])
                for b in cells.columns
            ]
            for a in cells.index
        ],
        index=pd.Index([escape(str(a)) for a in cells.index], name="algorithm"),
        columns=pd.Index([escape(f"{b} labels") for b in cells.columns]),
    )
    return marked.to_html(border=0, classes="data", escape=False)


def _figure_html(path: Path) -> str:
    data = path.read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError(f"{path}: not a PNG file")
    encoded = base64.b64encode(data).decode("ascii")
    name = escape(path.stem)
    return (
        f'<figure id="fig-{name}"><img src="data:image/png;base64,{encoded}" alt="{name}">'
        f"<figcaption>{name}</figcaption></figure>"
    )


def _comparison_frame(runs: pd.DataFrame, baseline: str) -> pd.DataFrame:
    comparison = compare_to_baseline(runs, baseline=baseline)
    return pd.DataFrame(
        {
            "task": comparison["task"],
            "labels": comparison["num_labels"],
            "algorithm": comparison["algorithm"],
            "shared seeds": comparison["n_shared_seeds"],
            f"{baseline} mean": comparison["baseline_mean"].map(lambda v: f"{v:.2f}"),
            "algorithm mean": comparison["algorithm_mean"].map(lambda v: f"{v:.2f}"),
            "mean difference": comparison["mean_difference"].map(format_diff),
            "p-value": comparison["p_value"].map(format_p),
        }
    ).replace("nan", "n/a")


def _published_frame(summary: pd.DataFrame, published: Sequence[str]) -> pd.DataFrame:
    table = usb.compare_to_published(summary, published)
    return pd.DataFrame(
        {
            "task": table["task"],
            "labels": table["num_labels"],
            "algorithm": table["algorithm"],
            "seeds": table["n_seeds"],
            "ours": [format_cell(m, s) for m, s in zip(table["ours_mean"], table["ours_std"],
                                                       strict=True)],
            "USB": [format_cell(m, s) for m, s in zip(table["usb_mean"], table["usb_std"],
                                                      strict=True)],
            "USB table": table["usb_benchmark"],
            "difference": table["difference"].map(format_diff),
        }
    )


def _runs_frame(runs: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "task": runs["task"],
            "labels": runs["num_labels"],
            "algorithm": runs["algorithm"],
            "seed": runs["seed"],
            "best test error (%)": runs["best_test_error"],
            "last test error (%)": runs["last_test_error"],
            "wall time (s)": runs["wall_time_s"],
            "device": runs["device"],
        }
    )


def render_html(
    runs: pd.DataFrame,
    summary_md: str | Path,
    figures: Sequence[str | Path],
    title: str,
    config: dict[str, Any] | None = None,
    baseline: str = LOWER_BOUND,
    published: Sequence[str] = (),
) -> str:
    """The page as a string (see :func:`write_html`)."""
    summary = summarize(runs)
    tasks = sorted(summary["task"].unique()) if not summary.empty else []
    domains = summary.groupby("task")["domain"].first().to_dict() if tasks else {}
    t = escape(title)
    body: list[str] = [
        f"<h1>{t}</h1>",
        f'<p class="note">Generated from {escape(describe_runs(runs))}</p>',
        "<nav><ul>",
        *(f'<li><a href="#{k}">{escape(v)}</a></li>' for k, v in CHECKPOINTS.items()),
        '<li><a href="#comparison">Paired comparison</a></li>',
        *(['<li><a href="#published">USB\'s published error rates</a></li>'] if published else []),
        '<li><a href="#figures">Figures</a></li>',
        '<li><a href="#summary">Summary statistics</a></li>',
        '<li><a href="#runs">All runs</a></li>',
        "</ul></nav>",
    ]
    for which, heading in CHECKPOINTS.items():
        body += [
            f'<h2 id="{which}">{escape(heading)}</h2>',
            f'<p class="note">Cells: mean ± std over seeds (sample std). Bold: lowest mean per '
            f"label budget, ignoring {escape(UPPER_BOUND)} (an upper bound trained on all "
            "labels).</p>",
        ]
        for task in tasks:
            body += [
                f"<h3>{escape(str(task))} ({escape(str(domains[task]))})</h3>",
                _error_table_html(summary, task, which),
            ]
    body += [
        f'<h2 id="comparison">Paired comparison with {escape(baseline)}</h2>',
        f'<p class="note">Test error at the best-validation checkpoint, algorithm − '
        f"{escape(baseline)} in percentage points (negative = better), over the seeds both "
        "have; two-sided paired t-test p-value, n/a with fewer than 2 shared seeds.</p>",
    ]
    if (runs["algorithm"] == baseline).any():
        body.append(_table_html(_comparison_frame(runs, baseline), index=False))
    else:
        body.append(f"<p>No {escape(baseline)} runs to compare with.</p>")
    if published:
        body += [
            f'<h2 id="published">USB\'s published error rates ({escape(", ".join(published))})'
            "</h2>",
            f'<p class="note">{escape(usb.NOTE)}</p>',
        ]
        table = _published_frame(summary, published)
        body.append(_table_html(table, index=False) if not table.empty
                    else "<p>None of these runs is a cell USB published.</p>")
    body.append('<h2 id="figures">Figures</h2>')
    body += [_figure_html(Path(f)) for f in figures]
    body += [
        '<h2 id="summary">Summary statistics</h2>',
        _table_html(summary, index=False, float_format=lambda v: f"{v:.3f}"),
        f'<h2 id="runs">All runs ({len(runs)})</h2>',
        _table_html(_runs_frame(runs), index=False, float_format=lambda v: f"{v:.2f}"),
    ]
    if config is not None:
        text = json.dumps(config, indent=2, sort_keys=True, default=str)
        body += ["<h2>Configuration</h2>", f"<pre>{escape(text)}</pre>"]
    md_text = Path(summary_md).read_text(encoding="utf-8")
    body += [
        f"<details><summary>{escape(Path(summary_md).name)} (Markdown source)</summary>",
        f"<pre>{escape(md_text)}</pre></details>",
    ]
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{t}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
    )
    return head + "\n".join(body) + "\n</body>\n</html>\n"


def write_html(
    runs: pd.DataFrame,
    summary_md: str | Path,
    figures: Sequence[str | Path],
    out_html: str | Path,
    title: str,
    config: dict[str, Any] | None = None,
    published: Sequence[str] = (),
) -> Path:
    """Write the self-contained report page atomically and return its path.

    ``summary_md`` is embedded verbatim in a collapsed block (the tables themselves are
    rendered from ``runs``); ``figures`` must be PNGs and appear in the given order;
    ``config`` (if given) is shown as sorted JSON; ``published`` names the USB result tables
    to set our numbers against. Nothing is time-stamped, so the same inputs give the same page.
    """
    out_html = Path(out_html)
    atomic_write_text(out_html, render_html(runs, summary_md, figures, title, config,
                                            published=published))
    return out_html
