"""Per-task figures: test error bars by label budget, and validation-error curves.

Figures are drawn on bare :class:`~matplotlib.figure.Figure` objects with the Agg canvas (no
pyplot global state, no display needed) and saved without a version stamp, so that the same
results give byte-identical PNGs and Snakemake/CI can compare them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from semibench.io import atomic_path
from semibench.report.aggregate import order_algorithms

#: (task, num_labels, algorithm, seed) -> curve.csv
CurveKey = tuple[str, int, str, int]

DPI = 100
#: inches per label budget (width) and figure height; fixed so that output is reproducible
WIDTH_PER_BUDGET = 4.5
HEIGHT = 4.0
MIN_WIDTH = 6.0
#: PNG metadata: drop the matplotlib version stamp so that output only depends on the data
PNG_METADATA: dict[str, str | None] = {"Software": None}
STYLE = sns.axes_style("whitegrid")


def _label(text: object) -> str:
    """Plain text for matplotlib: a ``$`` would otherwise switch to mathtext."""
    return str(text).replace("$", r"\$")


def algorithm_colors(algorithms: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One fixed colour per algorithm, shared by every figure of a report."""
    ordered = order_algorithms(algorithms)
    palette_name = "colorblind" if len(ordered) <= 10 else "husl"
    palette = sns.color_palette(palette_name, n_colors=max(len(ordered), 1))
    return {alg: tuple(palette[i]) for i, alg in enumerate(ordered)}


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata=PNG_METADATA)
    return path


def read_curve(path: str | Path) -> pd.DataFrame:
    """``iteration`` and ``val_error`` of the evaluated rows of one ``curve.csv``."""
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: cannot read curve file: {err}") from err
    missing = {"iteration", "val_error"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: curve file lacks column(s) {', '.join(sorted(missing))}")
    out = pd.DataFrame(
        {
            "iteration": pd.to_numeric(frame["iteration"], errors="coerce"),
            "val_error": pd.to_numeric(frame["val_error"], errors="coerce"),
        }
    )
    return out.dropna().sort_values("iteration", kind="mergesort").reset_index(drop=True)


def _bar_figure(task: str, task_runs: pd.DataFrame, colors: Mapping[str, tuple]) -> Figure:
    """Bars = mean best-on-validation test error, error bars = sample std, dots = seeds."""
    budgets = sorted(int(b) for b in task_runs["num_labels"].unique())
    algorithms = order_algorithms(task_runs["algorithm"])
    fig = Figure(
        figsize=(max(MIN_WIDTH, 3.5 + 2.2 * len(budgets)), HEIGHT), dpi=DPI, layout="constrained"
    )
    ax = fig.add_subplot()
    width = 0.8 / max(len(algorithms), 1)
    for j, alg in enumerate(algorithms):
        offset = -0.4 + width * (j + 0.5)
        first = True
        for i, budget in enumerate(budgets):
            cell = task_runs.loc[
                (task_runs["num_labels"] == budget) & (task_runs["algorithm"] == alg)
            ].sort_values("seed")
            values = cell["best_test_error"].to_numpy(dtype=float)
            if values.size == 0:
                continue
            x = i + offset
            mean = float(values.mean())
            std = float(values.std(ddof=1)) if values.size > 1 else float("nan")
            ax.bar(
                x,
                mean,
                width * 0.9,
                color=colors[alg],
                edgecolor="none",
                label=_label(alg) if first else None,
                zorder=2,
            )
            first = False
            if np.isfinite(std):
                ax.errorbar(x, mean, yerr=std, fmt="none", ecolor="black", capsize=3, zorder=3)
            spread = width * 0.5
            xs = x + (np.linspace(-spread / 2, spread / 2, values.size) if values.size > 1 else 0)
            ax.scatter(
                np.broadcast_to(xs, values.shape),
                values,
                s=14,
                color="black",
                edgecolors="white",
                linewidths=0.5,
                zorder=4,
            )
    ax.set_xticks(range(len(budgets)), [str(b) for b in budgets])
    ax.set_xlim(-0.6, len(budgets) - 0.4)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("labelled examples")
    ax.set_ylabel("test error (%) at best validation")
    ax.set_title(_label(f"{task}: test error (bars: mean ± std over seeds, dots: seeds)"))
    if ax.has_data():
        ax.legend(title="algorithm", fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


def _curve_figure(
    task: str,
    budgets: Sequence[int],
    algorithms: Sequence[str],
    curves: Mapping[CurveKey, Path],
    colors: Mapping[str, tuple],
) -> Figure:
    """One subplot per label budget: validation error vs iteration, mean over seeds."""
    n = max(len(budgets), 1)
    fig = Figure(
        figsize=(max(MIN_WIDTH, 2.0 + WIDTH_PER_BUDGET * n), HEIGHT), dpi=DPI, layout="constrained"
    )
    axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
    handles: dict[str, object] = {}
    for ax, budget in zip(axes, budgets, strict=False):
        for alg in algorithms:
            keys = sorted(k for k in curves if k[0] == task and k[1] == budget and k[2] == alg)
            frames = [read_curve(curves[k]) for k in keys]
            frames = [f for f in frames if not f.empty]
            if not frames:
                continue
            # seeds normally share the evaluation grid; where not, average what is there
            mean = pd.concat(frames).groupby("iteration", sort=True)["val_error"].mean()
            (line,) = ax.plot(
                mean.index.to_numpy(),
                mean.to_numpy(),
                color=colors[alg],
                marker="o",
                markersize=3,
                linewidth=1.5,
            )
            handles.setdefault(alg, line)
        ax.set_title(f"{budget} labels")
        ax.set_xlabel("iteration")
    axes[0].set_ylabel("validation error (%)")
    if handles:
        fig.legend(
            [handles[a] for a in algorithms if a in handles],
            [_label(a) for a in algorithms if a in handles],
            title="algorithm",
            fontsize="small",
            loc="outside right center",
        )
    else:
        axes[0].text(0.5, 0.5, "no curves", ha="center", va="center", transform=axes[0].transAxes)
    fig.suptitle(_label(f"{task}: validation error vs iteration (mean over seeds)"))
    return fig


def write_figures(
    runs: pd.DataFrame, curves: Mapping[CurveKey, str | Path], out_dir: str | Path
) -> list[Path]:
    """Write ``{task}.png`` and ``{task}_curves.png`` for every task in ``runs``.

    ``curves`` maps (task, num_labels, algorithm, seed) to a ``curve.csv``. Both files are
    always written for every task (a task without curves gets a "no curves" panel), so that
    a workflow can declare them as outputs up front. Returns the paths, sorted by task.
    """
    out_dir = Path(out_dir)
    curve_paths = {(str(k[0]), int(k[1]), str(k[2]), int(k[3])): Path(v) for k, v in curves.items()}
    colors = algorithm_colors([*runs["algorithm"], *(k[2] for k in curve_paths)])
    written: list[Path] = []
    with matplotlib.rc_context(STYLE):
        for task in sorted(runs["task"].unique()):
            task_runs = runs.loc[runs["task"] == task]
            written.append(_save(_bar_figure(task, task_runs, colors), out_dir / f"{task}.png"))
            task_keys = [k for k in curve_paths if k[0] == task]
            budgets = sorted({int(b) for b in task_runs["num_labels"]} | {k[1] for k in task_keys})
            algorithms = order_algorithms([*task_runs["algorithm"], *(k[2] for k in task_keys)])
            fig = _curve_figure(task, budgets, algorithms, curve_paths, colors)
            written.append(_save(fig, out_dir / f"{task}_curves.png"))
    return written
