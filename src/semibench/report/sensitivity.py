"""Sensitivity to a swept hyper-parameter (semibench.sweep): test error against its value.

Each swept run's point is recorded in its settings (``metrics.json``: ``config.sweep``) and
read into the ``sweep`` column of ``runs.csv`` (JSON, "" for a run without one). Per task,
label budget, algorithm (its label without the point) and parameter, the table holds the
error at each value over every run at it: its seeds and, where several parameters are swept,
the other parameters' values too (``n_runs`` says how many).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from semibench.sweep import unswept

SENSITIVITY_COLUMNS: tuple[str, ...] = (
    "task", "num_labels", "algorithm", "parameter", "value", "n_runs",
    "best_test_error_mean", "best_test_error_std", "last_test_error_mean",
)
FIGURE_SUFFIX = "_sensitivity"


def point_of(cell: Any) -> dict[str, Any]:
    """A ``sweep`` cell of runs.csv as the point it records ({} for none)."""
    if not isinstance(cell, str) or not cell.strip():
        return {}
    return dict(json.loads(cell))


def sweep_cell(point: Mapping[str, Any] | None) -> str:
    """The ``sweep`` cell of a run's point: JSON in the label's key order, "" for none."""
    return json.dumps(dict(point)) if point else ""


def swept_tasks(algorithms_by_task: Mapping[str, Any]) -> list[str]:
    """Tasks with a swept run label (``fixmatch,p_cutoff=0.9``) among their algorithms."""
    return sorted(t for t, labels in algorithms_by_task.items()
                  if any("," in str(a) for a in labels))


def _order(values: list[Any]) -> list[Any]:
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    return sorted(values) if numeric else sorted(values, key=str)


def sensitivity(runs: pd.DataFrame) -> pd.DataFrame:
    """The sensitivity table (:data:`SENSITIVITY_COLUMNS`) of the swept runs in ``runs``."""
    rows = []
    if "sweep" in runs.columns:
        for run in runs.itertuples(index=False):
            for parameter, value in point_of(run.sweep).items():
                rows.append({"task": run.task, "num_labels": int(run.num_labels),
                             "algorithm": unswept(str(run.algorithm)), "parameter": parameter,
                             "value": value, "best": float(run.best_test_error),
                             "last": float(run.last_test_error)})
    out = []
    frame = pd.DataFrame(rows, columns=["task", "num_labels", "algorithm", "parameter", "value",
                                        "best", "last"])
    for (task, budget, algorithm, parameter), group in frame.groupby(
            ["task", "num_labels", "algorithm", "parameter"], sort=True):
        for value in _order(list(dict.fromkeys(group["value"]))):
            at = group.loc[group["value"].map(lambda v, value=value: v == value
                                              and type(v) is type(value))]
            best = at["best"].to_numpy(dtype=float)
            out.append({"task": task, "num_labels": int(budget), "algorithm": algorithm,
                        "parameter": parameter, "value": value, "n_runs": len(best),
                        "best_test_error_mean": float(best.mean()),
                        "best_test_error_std": float(best.std(ddof=1)) if len(best) > 1
                        else math.nan,
                        "last_test_error_mean": float(at["last"].mean())})
    return pd.DataFrame(out, columns=list(SENSITIVITY_COLUMNS))


def sensitivity_figure(task: str, table: pd.DataFrame, colors: Mapping[str, tuple],
                       width: float, height: float, dpi: int) -> Any:
    """One panel per swept parameter of ``task``: mean test error (best-on-validation
    checkpoint) against the value, a line per algorithm and label budget, whiskers one
    sample standard deviation over the runs at the value."""
    from matplotlib.figure import Figure

    rows = table.loc[table["task"] == task]
    parameters = list(dict.fromkeys(rows["parameter"])) or [None]
    fig = Figure(figsize=(min(width * len(parameters), 14.0), height), dpi=dpi,
                 layout="constrained")
    axes = fig.subplots(1, len(parameters), squeeze=False)[0]
    for ax, parameter in zip(axes, parameters, strict=True):
        if parameter is None:
            ax.text(0.5, 0.5, "no finished swept run yet", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_axis_off()
            continue
        panel = rows.loc[rows["parameter"] == parameter]
        values = _order(list(dict.fromkeys(panel["value"])))
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        positions = {str(v): (float(v) if numeric else float(i)) for i, v in enumerate(values)}
        for (algorithm, budget), line in panel.groupby(["algorithm", "num_labels"], sort=True):
            xs = np.array([positions[str(v)] for v in line["value"]])
            order = np.argsort(xs)
            color = colors.get(algorithm, (0.2, 0.4, 0.8))
            ax.errorbar(xs[order], line["best_test_error_mean"].to_numpy()[order],
                        yerr=line["best_test_error_std"].fillna(0).to_numpy()[order],
                        marker="o", capsize=3, color=color,
                        label=f"{algorithm}, {budget} labels".replace("$", r"\$"))
        if not numeric:
            ax.set_xticks(list(positions.values()), [str(v) for v in values])
        elif len(values) > 2 and min(values) > 0 and max(values) / min(values) >= 100:
            ax.set_xscale("log")
        ax.set_xlabel(parameter)
        ax.set_ylabel("test error (%) at best validation")
        ax.set_title(f"{task}: {parameter}".replace("$", r"\$"))
        ax.legend(fontsize="x-small")
    return fig
