"""The report page: one self-contained HTML file rendered from a Jinja2 template.

Self-contained: inline CSS, figures as base64 data URIs, one inline script (the table
sorter), no external URL, so that the page can be archived, mailed or attached to a Snakemake
report and still render offline. All text is escaped by the template (autoescape). Tables are
rendered from :class:`semibench.report.tables.ReportData`, the same numbers the CSV, Markdown
and LaTeX files hold; figures are exactly the files the caller names, placed by their names.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from semibench.io import atomic_write_text
from semibench.metrics_file import METRICS
from semibench.report import cost as costs
from semibench.report import paper
from semibench.report import published as usb
from semibench.report.aggregate import PAIRED_TEST, format_test_p
from semibench.report.figures import algorithm_colors, color_hex
from semibench.report.formatting import format_cell, format_diff, format_p, plural
from semibench.report.frames import METRIC_TITLES
from semibench.report.layout import CD_FIGURE, COST_FIGURE, DOMAIN_TITLES, LOWER_BOUND, UPPER_BOUND
from semibench.report.summaries import describe_runs
from semibench.report.tables import ReportData, build, cost_rows
from semibench.variants import task_settings

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: what each kind of figure shows (the same words as workflow/report/*.rst)
CAPTIONS: dict[str, str] = {
    "errors": "Test error (%) of the checkpoint with the lowest validation error: bars are the "
              "mean over seeds, whiskers one sample standard deviation, dots the seeds.",
    "curves": "Validation and test error (%) at every evaluation; line: mean over seeds, band: "
              "lowest to highest seed.",
    "pseudolabels": "Pseudo-label quantity (mask ratio: share of unlabelled samples whose "
                    "pseudo-label passes the mask) and quality (accuracy of those that pass) "
                    "over training; line: mean over seeds, band: lowest to highest seed.",
    "per_class": "Test accuracy (%) per class at the best-validation checkpoint, mean over "
                 "seeds: where the errors are.",
    "cd": "Critical-difference diagram (Demšar 2006): the mean rank of each algorithm over the "
          "settings (1 = fewest errors); a bar joins algorithms the Nemenyi test cannot tell "
          "apart; CD is the critical difference of mean ranks.",
    "cost": "Mean test error against mean training time per run, one point per algorithm and "
            "label budget; the dashed line is the Pareto front (fully supervised left out).",
    "other": "A figure of this benchmark.",
}
STATISTICS_INTRO = (
    "Friedman test over the settings (task × label budget) of each domain, and over all of "
    "them, on the mean test error at the best-validation checkpoint; Nemenyi post-hoc test "
    "and critical-difference diagram (Demšar 2006; scipy and scikit-posthocs). Compared: "
    f"every algorithm but {UPPER_BOUND}, which sees every label."
)
COST_NOTE = (
    "Device-hours: the trainer's own clock (summed over resumes) times one device per run. "
    "Job hours and peak memory: Snakemake's benchmark of each train job (the whole job, last "
    "attempt). Minutes per run: mean training time."
)


# --------------------------------------------------------------------------- view models


@dataclass
class Cell:
    text: str
    css: str = ""
    sort: Any = None
    mark: str = ""
    swatch: str = ""
    title: str = ""


@dataclass
class Row:
    cells: list[Cell]
    css: str = ""


@dataclass
class Header:
    text: str
    numeric: bool = False


@dataclass
class Table:
    header: list[Header]
    rows: list[Row]
    sortable: bool = True
    caption: str = ""
    css: str = ""


@dataclass
class FigureView:
    id: str
    name: str
    data: str
    width: int
    height: int
    caption: str
    alt: str = ""


@dataclass
class TaskFigures:
    id: str
    name: str
    domain: str = ""
    figures: list[FigureView] = field(default_factory=list)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-") or "x"


def _num(value: Any) -> Any:
    """A sort key for a numeric cell ("" where there is no number)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return "" if not math.isfinite(number) else f"{number:.6g}"


def _alg_cell(name: str, colors: Mapping[str, tuple]) -> Cell:
    color = colors.get(name)
    return Cell(str(name), css="text", swatch=color_hex(color) if color is not None else "")


def _simple_table(frame: pd.DataFrame, colors: Mapping[str, tuple], numeric: Sequence[str] = (),
                  caption: str = "") -> Table:
    """A frame of already formatted strings; ``numeric`` columns are right-aligned and sort
    by their number; an ``algorithm`` column gets the algorithm's colour."""
    header = [Header(str(c), numeric=c in numeric) for c in frame.columns]
    rows = []
    for record in frame.to_dict("records"):
        cells = []
        for column in frame.columns:
            value = record[column]
            if column == "algorithm":
                cells.append(_alg_cell(str(value), colors))
            elif column in numeric:
                cells.append(Cell(str(value), sort=_num(str(value).split(" ")[0])))
            else:
                cells.append(Cell(str(value), css="text"))
        rows.append(Row(cells))
    return Table(header, rows, caption=caption)


def _paper_view(table: paper.PaperTable, colors: Mapping[str, tuple]) -> Table:
    header = [Header("algorithm"), *(Header(paper.setting_label(s), numeric=True)
                                     for s in table.settings),
              Header("mean error", numeric=True), Header("mean rank", numeric=True)]
    rows = []
    for alg in table.algorithms:
        cells = [_alg_cell(alg, colors)]
        for s in table.settings:
            n, expected = int(table.n_seeds.at[alg, s]), int(table.expected.at[alg, s])
            css = "missing" if n == 0 and expected else "notrun" if n == 0 else \
                "partial" if n < expected else ""
            cells.append(Cell(table.cell_text(alg, s), css=css, sort=_num(table.mean.at[alg, s]),
                              mark=table.marks.at[alg, s],
                              title=f"rank {table.ranks.at[alg, s]:g}"
                              if np.isfinite(table.ranks.at[alg, s]) else ""))
        cells.append(Cell(table.summary_text(alg, "mean_error"),
                          sort=_num(table.mean_error[alg])))
        cells.append(Cell(table.summary_text(alg, "mean_rank") if alg != UPPER_BOUND
                          else paper.NOT_RUN, sort=_num(table.mean_rank[alg])
                          if alg != UPPER_BOUND else ""))
        rows.append(Row(cells, css=table.role(alg).replace(" ", "-")))
    return Table(header, rows, css="paper")


def _png_size(data: bytes, path: Path) -> tuple[int, int]:
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError(f"{path}: not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _figure_view(path: Path, kind: str) -> FigureView:
    data = path.read_bytes()
    width, height = _png_size(data, path)
    return FigureView(id=_slug(path.stem), name=path.stem, alt=path.stem,
                      data=base64.b64encode(data).decode("ascii"), width=width, height=height,
                      caption=CAPTIONS[kind])


def classify_figures(paths: Sequence[Path], tasks: Sequence[str],
                     groups: Sequence[str]) -> dict[tuple[str, str], Path | list[Path]]:
    """Place each named figure by its file name: (kind, task or group) -> path; anything
    else under ("other", "") so that no given figure is dropped."""
    placed: dict[tuple[str, str], Any] = {("other", ""): []}
    suffixes = {"": "errors", "_curves": "curves", "_pseudolabels": "pseudolabels",
                "_per_class": "per_class"}
    for path in paths:
        stem = path.stem
        key = None
        for task in sorted(tasks, key=len, reverse=True):
            for suffix, kind in suffixes.items():
                if stem == f"{task}{suffix}":
                    key = (kind, task)
                    break
            if key:
                break
        if key is None:
            key = next((("cd", g) for g in groups if stem == CD_FIGURE.format(group=g)), None)
        if key is None and stem == COST_FIGURE:
            key = ("cost", "")
        if key is None or key in placed:
            placed[("other", "")].append(path)
        else:
            placed[key] = path
    return placed


# --------------------------------------------------------------------------- page


def _published_view(data: ReportData, colors: Mapping[str, tuple]) -> dict[str, Any] | None:
    if not data.published_tables:
        return None
    table = data.published
    frame = pd.DataFrame({
        "task": table["task"], "labels": table["num_labels"].astype(str),
        "algorithm": table["algorithm"], "seeds": table["n_seeds"].astype(str),
        "ours": [format_cell(m, s) if n else "missing"
                 for m, s, n in zip(table["ours_mean"], table["ours_std"], table["n_seeds"],
                                    strict=True)],
        "USB": [format_cell(m, s) for m, s in zip(table["usb_mean"], table["usb_std"],
                                                  strict=True)],
        "difference": table["difference"].map(format_diff),
        "inside USB ± 2 std": table["within_2std"].map(
            lambda v: {True: "yes", False: "no"}.get(v, "n/a")),
        "USB table": table["usb_benchmark"],
    })
    return {
        "tables": ", ".join(data.published_tables), "note": usb.NOTE,
        "summary": usb.summary_line(table),
        "table": _simple_table(frame, colors, numeric=["labels", "seeds", "ours", "USB",
                                                       "difference"]) if len(frame) else None,
    }


def _runs_table(runs: pd.DataFrame, colors: Mapping[str, tuple],
                metrics: Sequence[str] = ("error",)) -> Table:
    """Every run; the config's ``metrics:`` beyond the error add a best-on-validation column
    each (n/a where a run lacks it, e.g. top-5 with 5 classes or fewer)."""
    frame = pd.DataFrame({
        "task": runs["task"], "labels": runs["num_labels"].astype(str),
        "algorithm": runs["algorithm"], "seed": runs["seed"].astype(str),
        "best test error (%)": runs["best_test_error"].map(lambda v: f"{v:.2f}"),
        "last test error (%)": runs["last_test_error"].map(lambda v: f"{v:.2f}"),
        "best val error (%)": runs["best_val_error"].map(lambda v: f"{v:.2f}"),
        "best iteration": runs["best_iteration"].astype(str),
        "training time (min)": runs["wall_time_s"].map(lambda v: f"{v / 60:.2f}"),
        "device": runs["device"],
        "precision": runs.get("precision", ""),
    })
    numeric = ["labels", "seed", "best test error (%)", "last test error (%)",
               "best val error (%)", "best iteration", "training time (min)"]
    for metric in metrics:
        column = f"best_{METRICS[metric][0]}"
        if metric == "error" or column not in runs:
            continue
        title = METRIC_TITLES[metric].split(" (100")[0].replace("Test", "best test")
        title = title if title.startswith("best") else f"best {title[0].lower()}{title[1:]}"
        frame.insert(6, title, runs[column].map(lambda v: "n/a" if pd.isna(v) else f"{v:.2f}"))
        numeric.append(title)
    return _simple_table(frame, colors, numeric=numeric)


def _statistics_views(data: ReportData, colors: Mapping[str, tuple],
                      placed: Mapping[tuple[str, str], Any]) -> list[dict[str, Any]]:
    views = []
    for r in data.statistics:
        ranks = posthoc = None
        if len(r.mean_ranks):
            frame = pd.DataFrame({"algorithm": r.mean_ranks.sort_values().index,
                                  "mean rank": [f"{v:.2f}" for v in r.mean_ranks.sort_values()]})
            ranks = _simple_table(frame, colors, numeric=["mean rank"],
                                  caption=f"Mean rank over {plural(len(r.settings), 'setting')}")
        if r.posthoc is not None:
            rows = [{"algorithm": a, "other": b, "p-value": format_p(float(r.posthoc.at[a, b])),
                     "different at α": "yes" if r.posthoc.at[a, b] < r.alpha else "no"}
                    for i, a in enumerate(r.algorithms) for b in r.algorithms[i + 1:]]
            posthoc = _simple_table(pd.DataFrame(rows), colors, numeric=["p-value"])
        cd = placed.get(("cd", r.group))
        views.append({
            "id": f"stat-{_slug(r.group)}", "title": r.title, "message": r.message,
            "tested": r.tested, "excluded": ", ".join(r.excluded), "ranks": ranks,
            "posthoc": posthoc, "figure": _figure_view(cd, "cd") if cd else None,
        })
    return views


def _comparison_table(data: ReportData, colors: Mapping[str, tuple]) -> Table | None:
    c = data.comparisons
    if c.empty:
        return None
    frame = pd.DataFrame({
        "task": c["task"], "labels": c["num_labels"].astype(str), "algorithm": c["algorithm"],
        "baseline": c["baseline"], "shared seeds": c["n_shared_seeds"].astype(str),
        "baseline mean": c["baseline_mean"].map(lambda v: f"{v:.2f}"),
        "algorithm mean": c["algorithm_mean"].map(lambda v: f"{v:.2f}"),
        "mean difference": c["mean_difference"].map(format_diff),
        "p-value": [format_test_p(p, n) for p, n in zip(c["p_value"], c["n_shared_seeds"],
                                                        strict=True)],
        "Holm p-value": [format_test_p(p, n) for p, n in zip(c["p_holm"], c["n_shared_seeds"],
                                                             strict=True)],
    }).replace("nan", "n/a")
    return _simple_table(frame, colors, numeric=["labels", "shared seeds", "baseline mean",
                                                 "algorithm mean", "mean difference", "p-value",
                                                 "Holm p-value"])


def _cost_views(data: ReportData, colors: Mapping[str, tuple]) -> list[dict[str, Any]]:
    views = []
    for keys, title in ((["algorithm"], "Per algorithm"), (["task"], "Per task"),
                        (["task", "algorithm"], "Per task and algorithm"), ([], "Total")):
        table = costs.cost_table(data.runs, keys)
        if table.empty:
            continue
        header, rows = cost_rows(table, keys)
        frame = pd.DataFrame(rows, columns=header)
        views.append({"id": f"cost-{_slug('-'.join(keys) or 'total')}", "title": title,
                      "table": _simple_table(frame, colors, numeric=[
                          h for h in header[len(keys):] if not h.startswith("device (")])})
    return views


def render_html(
    data: ReportData,
    figures: Sequence[str | Path],
    title: str,
    config: Mapping[str, Any] | None = None,
) -> str:
    """The page as a string (see :func:`write_html`)."""
    colors = algorithm_colors([*data.grid["algorithm"], *data.runs["algorithm"]])
    tasks = sorted(data.domains)
    groups = [r.group for r in data.statistics]
    placed = classify_figures([Path(f) for f in figures], tasks, groups)
    done, expected = data.counts
    paper_views = [{"id": f"paper-{_slug(t.group)}", "title": DOMAIN_TITLES.get(t.group, t.group),
                    "table": _paper_view(t, colors), "latex": paper.to_latex(t),
                    "last": _paper_view(last, colors)}
                   for t, last in zip(data.paper, data.paper_last, strict=True)]
    task_views, diag_views = [], []
    for task in tasks:
        main = [_figure_view(placed[(k, task)], k) for k in ("errors", "curves")
                if (k, task) in placed]
        diag = [_figure_view(placed[(k, task)], k) for k in ("pseudolabels", "per_class")
                if (k, task) in placed]
        task_views.append(TaskFigures(_slug(task), task, data.domains[task], main))
        diag_views.append(TaskFigures(_slug(task), task, data.domains[task], diag))
    statistics = _statistics_views(data, colors, placed)
    cost_views = _cost_views(data, colors)
    published = _published_view(data, colors)
    missing = data.missing
    toc = [
        {"id": "overview", "title": "Overview"},
        {"id": "results", "title": "Results per domain",
         "children": [{"id": p["id"], "title": p["title"]} for p in paper_views]},
        {"id": "statistics", "title": "Statistics",
         "children": [{"id": s["id"], "title": s["title"]} for s in statistics]
         + [{"id": "paired", "title": f"Paired comparison with {LOWER_BOUND}"}]},
        {"id": "tasks", "title": "Per task",
         "children": [{"id": f"task-{t.id}", "title": t.name} for t in task_views]},
        {"id": "diagnostics", "title": "Diagnostics",
         "children": [{"id": f"diag-{t.id}", "title": t.name} for t in diag_views]},
        {"id": "cost", "title": "Cost"},
        *([{"id": "published", "title": "Published vs ours"}] if published else []),
        {"id": "runs", "title": f"All runs ({len(data.runs)})"},
        {"id": "missing", "title": f"Missing runs ({len(missing)})"},
        *([{"id": "other", "title": "Other figures"}] if placed[("other", "")] else []),
        *([{"id": "config", "title": "Configuration"}] if config is not None else []),
    ]
    toc = [{"children": [], **item} for item in toc]
    missing_table = None
    if len(missing):
        frame = pd.DataFrame({"task": missing["task"], "labels": missing["num_labels"].astype(str),
                              "algorithm": missing["algorithm"],
                              "seed": missing["seed"].astype(str)})
        missing_table = _simple_table(frame, colors, numeric=["labels", "seed"])
    cost_figure = placed.get(("cost", ""))
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("semibench.report", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=False,
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2").render(
        title=title, runs_sentence=f"Generated from {describe_runs(data.runs, data.grid)}",
        complete=data.complete, done=done, expected=expected,
        device_statement=costs.device_statement(data.runs), toc=toc,
        paper=paper_views, paper_notes=paper.NOTES, statistics=statistics,
        statistics_intro=STATISTICS_INTRO, baseline=LOWER_BOUND, paired_test=PAIRED_TEST,
        comparisons=_comparison_table(data, colors), tasks=task_views, diagnostics=diag_views,
        cost_tables=cost_views, cost_note=COST_NOTE,
        cost_figure=_figure_view(cost_figure, "cost") if cost_figure else None,
        published=published, runs_table=_runs_table(data.runs, colors, data.metrics),
        missing_count=len(missing), missing_table=missing_table,
        other_figures=[_figure_view(p, "other") for p in placed[("other", "")]],
        config=json.dumps(config, indent=2, sort_keys=True, default=str)
        if config is not None else None,
    )


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
