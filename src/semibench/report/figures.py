"""The report's figures, drawn with seaborn on bare matplotlib figures.

Per task: test error bars (``{task}.png``), validation and test error against iteration
(``{task}_curves.png``), pseudo-label quantity and quality (``{task}_pseudolabels.png``: the
mask ratio and the accuracy of the pseudo-labels that pass it, as USB, FreeMatch and SoftMatch
plot them) and the per-class accuracy of the best checkpoint (``{task}_per_class.png``). Per
swept task (semibench.sweep): the error against each swept value (``{task}_sensitivity.png``). Per
statistics group: the critical-difference diagram (``cd_{group}.png``). For the benchmark:
error against cost (``cost_pareto.png``). Every algorithm has one colour in every figure
(:func:`algorithm_colors`): the supervised baseline grey, the fully supervised bound black.

Figures use the Agg canvas (no pyplot state, no display) and are saved without a version
stamp, so the same results give byte-identical PNGs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import matplotlib.colors as mcolors
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from semibench.io import atomic_path
from semibench.report.frames import order_algorithms
from semibench.report.layout import (
    CD_FIGURE,
    COST_FIGURE,
    LOWER_BOUND,
    SENSITIVITY_FIGURE,
    TASK_FIGURES,
    UPPER_BOUND,
)
from semibench.report.sensitivity import sensitivity, sensitivity_figure, swept_tasks
from semibench.sweep import unswept

if TYPE_CHECKING:  # the statistics (scipy, scikit-posthocs) load only for the CD diagrams
    from semibench.report.stats import FriedmanResult

DPI = 100
HEIGHT = 4.0
MIN_WIDTH = 6.5
#: wider figures shrink to unreadable text on a page
MAX_WIDTH = 14.0
#: PNG metadata: drop the matplotlib version stamp so that output only depends on the data
PNG_METADATA: dict[str, str | None] = {"Software": None}
STYLE = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.85)}
BASELINE_COLORS = {LOWER_BOUND: (0.55, 0.55, 0.55), UPPER_BOUND: (0.1, 0.1, 0.1)}
BUDGET_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
#: label budgets side by side in one figure; more wrap to the next row
MAX_COLUMNS = 3


def _label(text: object) -> str:
    """Plain text for matplotlib: a ``$`` would otherwise switch to mathtext."""
    return str(text).replace("$", r"\$")


def algorithm_colors(algorithms: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One fixed colour per algorithm, shared by every figure (and table) of a report: the
    two baselines grey and black, the SSL algorithms from a colour-blind-safe palette (up to
    10; tab20 without its greys up to 18, then evenly spaced hues)."""
    ordered = order_algorithms(algorithms)
    ssl = [a for a in ordered if a not in BASELINE_COLORS]
    if len(ssl) <= 10:
        palette = sns.color_palette("colorblind", n_colors=10)[: max(len(ssl), 1)]
    elif len(ssl) <= 18:
        # tab20 without its greys; its pale halves darkened a little so text stays readable
        palette = [tuple(v * (0.8 if i % 2 else 1.0) for v in c)
                   for i, c in enumerate(sns.color_palette("tab20", 20)) if i not in (14, 15)]
    else:
        palette = sns.color_palette("husl", n_colors=len(ssl))
    colors = {a: tuple(float(v) for v in palette[i]) for i, a in enumerate(ssl)}
    colors.update({a: BASELINE_COLORS[a] for a in ordered if a in BASELINE_COLORS})
    return {a: colors[a] for a in ordered}


def color_hex(color: Sequence[float]) -> str:
    return mcolors.to_hex(color)


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata=PNG_METADATA)
    return path


def _note(ax: matplotlib.axes.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.35",
            wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _legend(fig: Figure, algorithms: Sequence[str], colors: Mapping[str, tuple],
            title: str = "algorithm") -> None:
    handles = [Line2D([], [], color=colors[a], marker="o", linewidth=2, markersize=5)
               for a in algorithms]
    fig.legend(handles, [_label(a) for a in algorithms], title=title, fontsize="small",
               loc="outside right center")


# --------------------------------------------------------------------------- per task


def _bar_figure(task: str, task_runs: pd.DataFrame, task_grid: pd.DataFrame,
                colors: Mapping[str, tuple]) -> Figure:
    """Bars = mean best-on-validation test error, error bars = sample std, dots = seeds;
    a configured cell without a finished run is labelled "missing"."""
    budgets = sorted({int(b) for b in task_runs["num_labels"]}
                     | {int(b) for b in task_grid["num_labels"]})
    algorithms = order_algorithms([*task_runs["algorithm"], *task_grid["algorithm"]])
    bars = len(algorithms) * len(budgets)
    fig = Figure(figsize=(min(MAX_WIDTH, max(MIN_WIDTH, 4.0 + 0.45 * bars)),
                          HEIGHT + (0.8 if bars > 20 else 0.0)), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / max(len(algorithms), 1)
    expected = set(zip(task_grid["num_labels"].astype(int), task_grid["algorithm"], strict=True))
    top = float(task_runs["best_test_error"].max()) if len(task_runs) else 100.0
    for j, alg in enumerate(algorithms):
        offset = -0.4 + width * (j + 0.5)
        for i, budget in enumerate(budgets):
            x = i + offset
            cell = task_runs.loc[(task_runs["num_labels"] == budget)
                                 & (task_runs["algorithm"] == alg)].sort_values("seed")
            values = cell["best_test_error"].to_numpy(dtype=float)
            if values.size == 0:
                if (budget, alg) in expected:
                    ax.text(x, top * 0.02, "missing", rotation=90, ha="center", va="bottom",
                            fontsize="x-small", color=colors[alg])
                continue
            mean = float(values.mean())
            ax.bar(x, mean, width * 0.9, color=colors[alg], edgecolor="none", zorder=2)
            if values.size > 1:
                ax.errorbar(x, mean, yerr=float(values.std(ddof=1)), fmt="none", ecolor="black",
                            capsize=3, zorder=3)
            spread = width * 0.25
            xs = x + (np.linspace(-spread, spread, values.size) if values.size > 1 else 0.0)
            ax.scatter(np.broadcast_to(xs, values.shape), values, s=14, color="black",
                       edgecolors="white", linewidths=0.5, zorder=4)
    ax.set_xticks(range(len(budgets)), [f"{b} labels" for b in budgets])
    ax.set_xlim(-0.6, len(budgets) - 0.4)
    ax.set_ylim(0, None if len(task_runs) else 100)
    ax.set_ylabel("test error (%) at best validation")
    ax.set_title(_label(f"{task}: test error (bars: mean, whiskers: ± std, dots: seeds)"))
    _legend(fig, algorithms, colors)
    return fig


def _line_panels(task: str, curves: pd.DataFrame, budgets: Sequence[int],
                 algorithms: Sequence[str], rows: Sequence[tuple[str, str, float]],
                 colors: Mapping[str, tuple], empty_note: str, title: str) -> Figure:
    """One row per (column, y label, scale) of ``rows``, one column per budget (at most
    :data:`MAX_COLUMNS`, then the next budgets below); per algorithm the mean over seeds with
    a min-max band."""
    budgets = list(budgets) or [None]
    cols = min(len(budgets), MAX_COLUMNS)
    chunks = math.ceil(len(budgets) / cols)
    fig = Figure(figsize=(max(8.0, 2.2 + 4.2 * cols), 0.9 + 3.0 * len(rows) * chunks),
                 dpi=DPI, layout="constrained")
    axes = fig.subplots(len(rows) * chunks, cols, squeeze=False)
    shown: list[str] = []
    for i, budget in enumerate(budgets):
        chunk, c = divmod(i, cols)
        sub = curves.loc[curves["num_labels"] == budget]
        for r, (column, ylabel, scale) in enumerate(rows):
            ax = axes[chunk * len(rows) + r][c]
            data = sub.loc[sub["algorithm"].isin(algorithms), ["algorithm", "seed", "iteration",
                                                                column]].dropna()
            if data.empty:
                _note(ax, empty_note)
            else:
                # mean and lowest-to-highest band over seeds, per evaluation (vectorised:
                # seaborn's lineplot aggregates group by group, minutes for USB's grid)
                band = (data.assign(**{column: data[column] * scale})
                        .groupby(["algorithm", "iteration"], sort=True)[column]
                        .agg(["mean", "min", "max", "count"]))
                present = [a for a in algorithms if a in band.index.get_level_values(0)]
                for alg in present:
                    line = band.loc[alg]
                    x = line.index.to_numpy(dtype=float)
                    ax.plot(x, line["mean"], color=colors[alg], marker="o", markersize=3.5,
                            markeredgewidth=0, linewidth=1.6)
                    if (line["count"] > 1).any():
                        ax.fill_between(x, line["min"], line["max"], color=colors[alg],
                                        alpha=0.2, linewidth=0)
                shown += [a for a in present if a not in shown]
            if scale == 100.0:  # shares: the whole 0-100 % range, comparable across tasks
                ax.set_ylim(-3, 103)
            ax.set_xlabel("iteration" if r == len(rows) - 1 else "")
            ax.set_ylabel(ylabel if c == 0 else "")
            if r == 0:
                ax.set_title(f"{budget} labels" if budget is not None else "")
    for i in range(len(budgets), chunks * cols):
        chunk, c = divmod(i, cols)
        for r in range(len(rows)):
            axes[chunk * len(rows) + r][c].set_axis_off()
    if shown:
        _legend(fig, [a for a in algorithms if a in shown], colors)
    fig.suptitle(_label(f"{task}: {title}\n(line: mean over seeds, band: lowest to highest "
                        "seed)"))
    return fig


def _curve_figure(task: str, curves: pd.DataFrame, budgets: Sequence[int],
                  algorithms: Sequence[str], colors: Mapping[str, tuple]) -> Figure:
    rows = [("val_error", "validation error (%)", 1.0), ("test_error", "test error (%)", 1.0)]
    return _line_panels(task, curves, budgets, algorithms, rows, colors, "no curves",
                        "validation and test error")


def _pseudolabel_figure(task: str, curves: pd.DataFrame, budgets: Sequence[int],
                        algorithms: Sequence[str], colors: Mapping[str, tuple]) -> Figure:
    rows = [("mask_ratio", "mask ratio (%)\n(quantity)", 100.0),
            ("pseudo_label_acc", "pseudo-label accuracy (%)\n(quality)", 100.0)]
    return _line_panels(task, curves, budgets, algorithms, rows, colors,
                        "no pseudo-labels logged\n(supervised runs only)",
                        "pseudo-labels that pass the mask, quantity and quality")


def _per_class_figure(task: str, per_class: pd.DataFrame, budgets: Sequence[int],
                      algorithms: Sequence[str]) -> Figure:
    """Accuracy per class of the best-on-validation checkpoint, mean over seeds: one heatmap
    per label budget, rows = algorithms, columns = classes."""
    classes = (per_class.drop_duplicates("class_index").sort_values("class_index")
               if len(per_class) else per_class)
    n_classes = max(len(classes), 1)
    names = [str(n) for n in classes["class_name"]] if len(classes) else []
    longest = max((len(n) for n in names), default=1)
    annotate = n_classes <= 15 and len(algorithms) <= 14
    rotate = n_classes > 12 or longest > 6
    width = min(22.0, max(MIN_WIDTH + 1, 3.0 + (0.62 if annotate else 0.16) * n_classes))
    # rows of the heatmap, its title, and the class names under it (rotated: by their length)
    heights = [0.9 + 0.36 * max(len(algorithms), 1) + (0.075 * min(longest, 40) if rotate else 0.3)
               for _ in budgets] or [2.0]
    fig = Figure(figsize=(width, 0.6 + sum(heights)), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(heights), 1, squeeze=False, gridspec_kw={"height_ratios": heights})
    for ax, budget in zip(axes[:, 0], budgets or [None], strict=False):
        sub = per_class.loc[per_class["num_labels"] == budget] if budget is not None else per_class
        if sub.empty:
            _note(ax, "no per-class accuracy recorded")
            continue
        table = (sub.groupby(["algorithm", "class_index"])["best_accuracy"].mean()
                 .unstack("class_index"))
        table = table.reindex(index=[a for a in algorithms if a in table.index],
                              columns=list(classes["class_index"]))
        step = max(1, math.ceil(n_classes / 50))
        sns.heatmap(table, ax=ax, vmin=0, vmax=100, cmap="viridis", annot=annotate, fmt=".0f",
                    annot_kws={"fontsize": "x-small"}, linewidths=0.5 if annotate else 0,
                    cbar_kws={"label": "accuracy (%)", "pad": 0.01},
                    xticklabels=names if step == 1 else False,
                    yticklabels=[_label(a) for a in table.index])
        if step > 1:
            ticks = list(range(0, n_classes, step))
            ax.set_xticks([t + 0.5 for t in ticks], [_label(names[t]) for t in ticks])
        ax.tick_params(axis="x", labelrotation=90 if rotate else 0)
        ax.tick_params(axis="y", labelrotation=0)
        ax.set_xlabel("class")
        ax.set_ylabel("")
        ax.set_title(f"{budget} labels", fontsize="medium")
    fig.suptitle(_label(f"{task}: test accuracy per class (%)\nat the best-validation "
                        "checkpoint, mean over seeds"))
    return fig


# --------------------------------------------------------------------------- per group


def _cd_figure(result: FriedmanResult, colors: Mapping[str, tuple]) -> Figure:
    """Demšar's critical-difference diagram (scikit-posthocs): mean ranks on the axis,
    algorithms the Nemenyi test cannot tell apart (α) joined by a bar, CD drawn above."""
    k = max(len(result.algorithms), 2)
    fig = Figure(figsize=(8.0, 2.4 + 0.32 * k), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    if not result.tested or result.posthoc is None:
        _note(ax, result.message)
        ax.set_axis_off()
        fig.suptitle(_label(f"{result.title}: critical-difference diagram"))
        return fig
    import scikit_posthocs as sp

    ranks = result.mean_ranks
    sp.critical_difference_diagram(
        ranks, result.posthoc, ax=ax, alpha=result.alpha,
        color_palette={a: color_hex(colors[a]) for a in ranks.index},
        label_fmt_left="{label} ({rank:.2f})", label_fmt_right="({rank:.2f}) {label}",
        label_props={"fontsize": "small"}, crossbar_props={"color": "0.2", "linewidth": 2.5},
    )
    ax.grid(False)
    # Demšar's critical-difference bar, above the rank axis and clear of its tick labels
    low, high = ax.get_ylim()
    start, cd = float(ranks.min()), result.critical_difference
    ax.plot([start, start + cd], [1.4, 1.4], color="0.2", linewidth=2, clip_on=False)
    for x in (start, start + cd):
        ax.plot([x, x], [1.25, 1.55], color="0.2", linewidth=1.2, clip_on=False)
    ax.text(start + cd / 2, 1.7, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize="small")
    ax.set_ylim(low, max(high, 2.3))
    ax.set_xlim(0.8, max(len(ranks), start + cd) + 0.2)
    fig.suptitle(_label(
        f"{result.title}: mean rank over {len(result.settings)} settings (1 = best), "
        f"Friedman p = {result.p_value:.3g}\nbars join algorithms the Nemenyi test cannot "
        f"separate (α = {result.alpha})"), fontsize="medium")
    return fig


def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Points no other point beats on both ``x`` and ``y`` (lower is better), by ``x``."""
    ordered = points.sort_values([x, y], kind="mergesort")
    best, keep = math.inf, []
    for index, value in zip(ordered.index, ordered[y], strict=True):
        if value < best:
            keep.append(index)
            best = value
    return ordered.loc[keep]


def _cost_figure(runs: pd.DataFrame, tasks: Sequence[str], colors: Mapping[str, tuple]) -> Figure:
    """Per task: mean test error against mean training time per run, one point per
    (algorithm, label budget); the dashed line joins the Pareto-optimal ones (fully
    supervised, which uses every label, is left out of the front)."""
    n = max(len(tasks), 1)
    cols = min(n, 2)  # wider would shrink on the page
    nrows = math.ceil(n / cols)
    fig = Figure(figsize=(max(MIN_WIDTH, 1.8 + 4.4 * cols), 0.6 + 3.6 * nrows), dpi=DPI,
                 layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False)
    budgets_all = sorted({int(b) for b in runs["num_labels"]}) if len(runs) else []
    marker = {b: BUDGET_MARKERS[i % len(BUDGET_MARKERS)] for i, b in enumerate(budgets_all)}
    for ax, task in zip(axes.flat, tasks, strict=False):
        sub = runs.loc[runs["task"] == task]
        if sub.empty:
            _note(ax, "no finished runs")
            ax.set_title(task)
            continue
        points = (sub.groupby(["algorithm", "num_labels"])
                  .agg(minutes=("wall_time_s", lambda s: s.mean() / 60),
                       error=("best_test_error", "mean")).reset_index())
        for row in points.itertuples(index=False):
            ax.scatter(row.minutes, row.error, s=55, color=colors[row.algorithm],
                       marker=marker[int(row.num_labels)], edgecolors="white", linewidths=0.6,
                       zorder=3)
        front = pareto_front(points.loc[points["algorithm"] != UPPER_BOUND], "minutes", "error")
        if len(front) > 1:
            ax.plot(front["minutes"], front["error"], linestyle="--", color="0.4", linewidth=1,
                    drawstyle="steps-post", zorder=2)
        if points["minutes"].max() > 30 * max(points["minutes"].min(), 1e-9):
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(mticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
            ax.xaxis.set_minor_formatter(mticker.NullFormatter())
        ax.set_title(task)
        ax.set_xlabel("training time per run (min)")
        ax.set_ylabel("test error (%)")
        ax.margins(x=0.15, y=0.15)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_axis_off()
    algorithms = order_algorithms(runs["algorithm"]) if len(runs) else []
    handles = [Line2D([], [], color=colors[a], marker="o", linestyle="") for a in algorithms]
    labels = [_label(a) for a in algorithms]
    if len(budgets_all) > 1:
        handles += [Line2D([], [], color="0.3", marker=marker[b], linestyle="",
                           markerfacecolor="none") for b in budgets_all]
        labels += [f"{b} labels" for b in budgets_all]
    handles.append(Line2D([], [], color="0.4", linestyle="--"))
    labels.append("Pareto front")
    fig.legend(handles, labels, fontsize="small", loc="outside right center")
    device = ", ".join(sorted({f"{d} ({p})" for d, p in zip(runs["device"], runs["precision"],
                                                            strict=True)})) if len(runs) else ""
    fig.suptitle(_label(f"Test error against training time per run, mean over seeds ({device})"))
    return fig


# --------------------------------------------------------------------------- all of them


def task_figure_names(task: str, swept: bool) -> list[str]:
    """The files :func:`write_task_figures` writes for ``task``, in order."""
    names = [f"{stem.format(task=task)}.png" for stem in TASK_FIGURES]
    return names + ([f"{SENSITIVITY_FIGURE.format(task=task)}.png"] if swept else [])


def write_task_figures(
    task: str,
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    per_class: pd.DataFrame,
    out_dir: str | Path,
    grid: pd.DataFrame | None = None,
    algorithms: Sequence[str] = (),
) -> list[Path]:
    """Write one task's figures (module docstring), from its rows of the tables: the test
    error bars, learning curves, pseudo-labels and per-class accuracy, and the sensitivity
    figure where the task has swept runs. ``algorithms``: every algorithm label of the
    benchmark, which fixes each one's colour (:func:`algorithm_colors`), so that a task's
    figures drawn alone match the others (default: the task's own). Returns the paths in
    :func:`task_figure_names` order."""
    out_dir = Path(out_dir)
    task_runs = runs.loc[runs["task"] == task]
    task_grid = (grid.loc[grid["task"] == task] if grid is not None
                 else task_runs[["task", "domain", "num_labels", "algorithm", "seed"]])
    every = [*algorithms, *task_grid["algorithm"], *task_runs["algorithm"]]
    colors = algorithm_colors(every)
    swept = bool(swept_tasks({task: [*task_grid["algorithm"], *task_runs["algorithm"]]}))
    budgets = sorted({int(b) for b in task_runs["num_labels"]}
                     | {int(b) for b in task_grid["num_labels"]})
    labels = order_algorithms([*task_runs["algorithm"], *task_grid["algorithm"]])
    task_curves = curves.loc[curves["task"] == task]
    names = task_figure_names(task, swept)
    with matplotlib.rc_context(STYLE):
        figs = [
            _bar_figure(task, task_runs, task_grid, colors),
            _curve_figure(task, task_curves, budgets, labels, colors),
            _pseudolabel_figure(task, task_curves, budgets, labels, colors),
            _per_class_figure(task, per_class.loc[per_class["task"] == task], budgets, labels),
        ]
        if swept:
            unswept_colors = algorithm_colors([unswept(str(a)) for a in every])
            figs.append(sensitivity_figure(task, sensitivity(task_runs), unswept_colors,
                                           MIN_WIDTH * 0.75, HEIGHT, DPI))
        return [_save(fig, out_dir / name) for name, fig in zip(names, figs, strict=True)]


def write_group_figures(
    runs: pd.DataFrame,
    out_dir: str | Path,
    grid: pd.DataFrame | None = None,
    statistics: Sequence[FriedmanResult] = (),
    cd_groups: Sequence[str] = (),
) -> list[Path]:
    """Write the figures of the whole benchmark: a critical-difference diagram for each of
    ``cd_groups`` (from ``statistics``) and the cost figure, in that order."""
    out_dir = Path(out_dir)
    if grid is None:
        grid = runs[["task", "domain", "num_labels", "algorithm", "seed"]]
    colors = algorithm_colors([*grid["algorithm"], *runs["algorithm"]])
    tasks = sorted({str(t) for t in pd.concat([grid["task"], runs["task"]])})
    by_group = {r.group: r for r in statistics}
    written: list[Path] = []
    with matplotlib.rc_context(STYLE):
        for group in cd_groups:
            if group not in by_group:
                raise ValueError(f"no statistics for group {group!r} "
                                 f"(groups: {', '.join(by_group) or 'none'})")
            written.append(_save(_cd_figure(by_group[group], colors),
                                 out_dir / f"{CD_FIGURE.format(group=group)}.png"))
        written.append(_save(_cost_figure(runs, tasks, colors), out_dir / f"{COST_FIGURE}.png"))
    return written


def write_figures(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    per_class: pd.DataFrame,
    out_dir: str | Path,
    grid: pd.DataFrame | None = None,
    statistics: Sequence[FriedmanResult] = (),
    cd_groups: Sequence[str] = (),
) -> list[Path]:
    """Write the figures (module docstring) for every task of ``grid`` (default: of ``runs``)
    and a CD diagram for each of ``cd_groups`` (from ``statistics``). Every file is written
    even without data (a panel says what is missing), so that a workflow can declare them
    up front. Returns the paths: tasks sorted, per task in :data:`layout.TASK_FIGURES` order,
    then the CD diagrams, then the cost figure."""
    if grid is None:
        grid = runs[["task", "domain", "num_labels", "algorithm", "seed"]]
    algorithms = [*grid["algorithm"], *runs["algorithm"]]
    tasks = sorted({str(t) for t in pd.concat([grid["task"], runs["task"]])})
    written: list[Path] = []
    for task in tasks:
        written += write_task_figures(task, runs, curves, per_class, out_dir, grid=grid,
                                      algorithms=algorithms)
    return written + write_group_figures(runs, out_dir, grid, statistics, cd_groups)


__all__ = ["algorithm_colors", "color_hex", "pareto_front", "task_figure_names",
           "write_figures", "write_group_figures", "write_task_figures"]
