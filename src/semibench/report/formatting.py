"""How the report writes numbers and cells (Markdown, LaTeX and HTML alike); CSVs keep full
precision."""

from __future__ import annotations

import numpy as np
import pandas as pd

from semibench.metrics_file import METRICS
from semibench.report.frames import order_algorithms
from semibench.report.layout import UPPER_BOUND

#: what the two table sets show, keyed by the ``which`` argument of :func:`error_table`
CHECKPOINTS: dict[str, str] = {
    "best": "Test error (%) at the checkpoint with the lowest validation error",
    "last": "Test error (%) at the last evaluation",
}
MISSING_CELL = "–"


def format_cell(mean: float, std: float) -> str:
    """``"mean ± std"`` with 2 decimals; ``n/a`` for the std of a single seed."""
    if not np.isfinite(mean):
        return MISSING_CELL
    spread = f"{std:.2f}" if np.isfinite(std) else "n/a"
    return f"{mean:.2f} ± {spread}"


def format_p(p: float) -> str:
    """p-values keep their order of magnitude when tiny; NaN becomes ``n/a``."""
    if not np.isfinite(p):
        return "n/a"
    return f"{p:.1e}" if p < 1e-4 else f"{p:.4f}"


def format_diff(d: float) -> str:
    """Signed, so that an improvement (negative) is visible at a glance."""
    return f"{d:+.2f}" if np.isfinite(d) else "n/a"


def plural(n: int, word: str) -> str:
    """"1 setting", "2 settings"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def format_hours(seconds: float) -> str:
    """Seconds as hours, with enough digits for CPU-sized and GPU-sized runs alike."""
    if not np.isfinite(seconds):
        return "n/a"
    hours = seconds / 3600
    return f"{hours:.3f}" if hours < 10 else f"{hours:,.1f}"


def error_table(
    summary: pd.DataFrame, task: str, which: str = "best", metric: str = "error"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cells and bold mask of one task's table: rows = algorithms, columns = label budgets.

    ``cells`` holds ``"mean ± std"`` strings of ``metric`` (:data:`METRICS`;
    :data:`MISSING_CELL` where an algorithm was not run or the metric does not apply);
    ``bold`` marks the best mean of each column (lowest, or highest for macro-F1), ties
    included. The upper bound (:data:`UPPER_BOUND`) is never bold: it trains on all labels,
    so winning is expected.
    """
    if which not in CHECKPOINTS:
        raise ValueError(f"which must be one of {sorted(CHECKPOINTS)}, got {which!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    field, lower_is_better = METRICS[metric]
    sub = summary.loc[summary["task"] == task]
    budgets = sorted(int(b) for b in sub["num_labels"].unique())
    algorithms = order_algorithms(sub["algorithm"])

    def grid(column: str) -> pd.DataFrame:
        table = sub.pivot(index="algorithm", columns="num_labels", values=column)
        return table.reindex(index=algorithms, columns=budgets).astype(float)

    mean = grid(f"{which}_{field}_mean")
    std = grid(f"{which}_{field}_std")
    cells = pd.DataFrame(
        [[format_cell(mean.at[a, b], std.at[a, b]) for b in budgets] for a in algorithms],
        index=pd.Index(algorithms, name="algorithm"),
        columns=pd.Index(budgets, name="num_labels"),
    )
    compared = mean.drop(index=UPPER_BOUND, errors="ignore")
    col_min = compared.min(axis=0) if lower_is_better else compared.max(axis=0)
    bold = pd.DataFrame(False, index=cells.index, columns=cells.columns)
    for b in budgets:
        if np.isfinite(col_min[b]):
            bold[b] = np.isclose(mean[b].to_numpy(), col_min[b]) & mean[b].notna().to_numpy()
    if UPPER_BOUND in bold.index:
        bold.loc[UPPER_BOUND] = False
    return cells, bold
