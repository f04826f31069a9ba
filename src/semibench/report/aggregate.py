"""Aggregate per-run metrics into tables: runs.csv, summary.csv and summary.md.

Everything a report shows is computed here from the ``metrics.json`` files, so the CSV, the
Markdown and the HTML page cannot disagree with each other.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from json import JSONDecodeError
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from semibench.io import atomic_write_text, read_json
from semibench.report import published as usb

#: columns of :func:`collect_runs`, in order
RUN_COLUMNS: tuple[str, ...] = (
    "task",
    "domain",
    "num_labels",
    "algorithm",
    "seed",
    "best_test_error",
    "last_test_error",
    "best_val_error",
    "best_iteration",
    "wall_time_s",
    "device",
    "text_strong_view",
    "metrics_path",
)
#: columns of :func:`summarize`, in order
SUMMARY_COLUMNS: tuple[str, ...] = (
    "task",
    "domain",
    "num_labels",
    "algorithm",
    "n_seeds",
    "best_test_error_mean",
    "best_test_error_std",
    "last_test_error_mean",
    "last_test_error_std",
    "wall_time_s_mean",
)
#: columns of :func:`compare_to_baseline`, in order
COMPARISON_COLUMNS: tuple[str, ...] = (
    "task",
    "num_labels",
    "algorithm",
    "baseline",
    "n_shared_seeds",
    "algorithm_mean",
    "baseline_mean",
    "mean_difference",
    "p_value",
)
#: the lower bound (labelled data only) is listed first, the upper bound (all labels) last
LOWER_BOUND = "supervised"
UPPER_BOUND = "fullysupervised"
#: what the two table sets show, keyed by the ``which`` argument of :func:`error_table`
CHECKPOINTS: dict[str, str] = {
    "best": "Test error (%) at the checkpoint with the lowest validation error",
    "last": "Test error (%) at the last evaluation",
}
MISSING_CELL = "–"


class MetricsFormatError(ValueError):
    """A ``metrics.json`` file cannot be read or lacks a field; the message names the file."""


# --------------------------------------------------------------------------- ordering


def algorithm_sort_key(name: str) -> tuple[int, str]:
    """Lower bound first, upper bound last, everything else alphabetical in between."""
    if name == LOWER_BOUND:
        return (0, name)
    if name == UPPER_BOUND:
        return (2, name)
    return (1, name)


def order_algorithms(names: Iterable[str]) -> list[str]:
    """Unique algorithm names in benchmark order (see :func:`algorithm_sort_key`)."""
    return sorted({str(n) for n in names}, key=algorithm_sort_key)


def _sort_frame(frame: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Sort by task, num_labels, benchmark algorithm order, then ``extra``; fresh index."""
    if frame.empty:
        return frame.reset_index(drop=True)
    rank = frame["algorithm"].map(lambda a: algorithm_sort_key(a)[0])
    keyed = frame.assign(_alg_rank=rank)
    by = ["task", "num_labels", "_alg_rank", "algorithm", *extra]
    keyed = keyed.sort_values(by, kind="mergesort")
    return keyed.drop(columns="_alg_rank").reset_index(drop=True)


# --------------------------------------------------------------------------- collecting


def _field(data: Mapping[str, Any], key: str, prefix: str = "") -> Any:
    if key not in data:
        raise ValueError(f"missing field {prefix + key!r}")
    return data[key]


def _str_field(data: Mapping[str, Any], key: str, prefix: str = "") -> str:
    value = _field(data, key, prefix)
    if not isinstance(value, str) or not value:
        raise ValueError(f"field {prefix + key!r} must be a non-empty string, got {value!r}")
    return value


def _int_field(data: Mapping[str, Any], key: str, prefix: str = "") -> int:
    value = _field(data, key, prefix)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"field {prefix + key!r} must be an integer, got {value!r}")
    return value


def _num_field(data: Mapping[str, Any], key: str, prefix: str = "") -> float:
    value = _field(data, key, prefix)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"field {prefix + key!r} must be a finite number, got {value!r}")
    return float(value)


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = _field(data, key)
    if not isinstance(value, Mapping):
        raise ValueError(f"field {key!r} must be an object, got {type(value).__name__}")
    return value


def _read_run(path: Path) -> dict[str, Any]:
    """One row of :func:`collect_runs`; any problem is reported with the file's path."""
    try:
        data = read_json(path)
    except (OSError, UnicodeDecodeError, JSONDecodeError) as err:
        raise MetricsFormatError(f"{path}: cannot read metrics file: {err}") from err
    try:
        if not isinstance(data, Mapping):
            raise ValueError(f"top level must be an object, got {type(data).__name__}")
        best = _section(data, "best")
        last = _section(data, "last")
        return {
            "task": _str_field(data, "task"),
            "domain": _str_field(data, "domain"),
            "num_labels": _int_field(data, "num_labels"),
            "algorithm": _str_field(data, "algorithm"),
            "seed": _int_field(data, "seed"),
            "best_test_error": _num_field(best, "test_error", "best."),
            "last_test_error": _num_field(last, "test_error", "last."),
            "best_val_error": _num_field(best, "val_error", "best."),
            "best_iteration": _int_field(best, "iteration", "best."),
            "wall_time_s": _num_field(data, "wall_time_s"),
            "device": _str_field(data, "device"),
            # text runs: back-translation (USB) or the token-edit stand-in; "" elsewhere
            "text_strong_view": str(data.get("text_strong_view") or ""),
            "metrics_path": str(path),
        }
    except ValueError as err:
        raise MetricsFormatError(f"{path}: malformed metrics file: {err}") from err


def collect_runs(metrics_paths: Sequence[str | Path]) -> pd.DataFrame:
    """One row per run (columns :data:`RUN_COLUMNS`), sorted in benchmark order.

    Raises :class:`MetricsFormatError` naming the file for unreadable or incomplete metrics,
    and for two files claiming the same (task, num_labels, algorithm, seed), which would
    otherwise silently double-count a seed.
    """
    rows = [_read_run(Path(p)) for p in metrics_paths]
    seen: dict[tuple[str, int, str, int], str] = {}
    for row in rows:
        key = (row["task"], row["num_labels"], row["algorithm"], row["seed"])
        if key in seen:
            raise MetricsFormatError(
                f"{row['metrics_path']}: duplicate run {key} (also in {seen[key]})"
            )
        seen[key] = row["metrics_path"]
    frame = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    if frame.empty:
        frame = frame.astype(
            {"num_labels": "int64", "seed": "int64", "best_iteration": "int64"}
            | {c: "float64" for c in RUN_COLUMNS if c.endswith(("_error", "_s"))}
        )
    return _sort_frame(frame, extra=["seed"])


# --------------------------------------------------------------------------- statistics


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std (ddof=1; NaN for one seed) per (task, num_labels, algorithm)."""
    keys = ["task", "num_labels", "algorithm"]
    if runs.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    summary = (
        runs.groupby(keys, sort=False)
        .agg(
            domain=("domain", "first"),
            n_seeds=("seed", "nunique"),
            best_test_error_mean=("best_test_error", "mean"),
            best_test_error_std=("best_test_error", lambda s: s.std(ddof=1)),
            last_test_error_mean=("last_test_error", "mean"),
            last_test_error_std=("last_test_error", lambda s: s.std(ddof=1)),
            wall_time_s_mean=("wall_time_s", "mean"),
        )
        .reset_index()
    )
    return _sort_frame(summary[list(SUMMARY_COLUMNS)])


def compare_to_baseline(
    runs: pd.DataFrame, baseline: str = LOWER_BOUND, metric: str = "best_test_error"
) -> pd.DataFrame:
    """Paired comparison of every algorithm with ``baseline`` on the seeds both have.

    Pairing by seed removes the variance that comes from the labelled split, which the two
    runs share. ``mean_difference`` = algorithm - baseline (negative: fewer errors);
    ``p_value`` is the two-sided paired t-test (:func:`scipy.stats.ttest_rel`), NaN with
    fewer than two shared seeds.
    """
    if metric not in runs.columns:
        raise ValueError(f"unknown metric {metric!r}; columns: {', '.join(runs.columns)}")
    rows: list[dict[str, Any]] = []
    for (task, num_labels), group in runs.groupby(["task", "num_labels"], sort=False):
        base = group.loc[group["algorithm"] == baseline].set_index("seed")[metric]
        others = group.loc[group["algorithm"] != baseline]
        for algorithm, alg_group in others.groupby("algorithm", sort=False):
            values = alg_group.set_index("seed")[metric]
            shared = sorted(set(values.index) & set(base.index))
            a = values.loc[shared].to_numpy(dtype=float)
            b = base.loc[shared].to_numpy(dtype=float)
            p_value = math.nan
            if len(shared) >= 2:
                with warnings.catch_warnings():
                    # identical differences make the t statistic degenerate; scipy warns
                    warnings.simplefilter("ignore", RuntimeWarning)
                    p_value = float(stats.ttest_rel(a, b).pvalue)
            rows.append(
                {
                    "task": task,
                    "num_labels": num_labels,
                    "algorithm": algorithm,
                    "baseline": baseline,
                    "n_shared_seeds": len(shared),
                    "algorithm_mean": float(a.mean()) if shared else math.nan,
                    "baseline_mean": float(b.mean()) if shared else math.nan,
                    "mean_difference": float((a - b).mean()) if shared else math.nan,
                    "p_value": p_value,
                }
            )
    frame = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    return _sort_frame(frame)


# --------------------------------------------------------------------------- formatting


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


def error_table(
    summary: pd.DataFrame, task: str, which: str = "best"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cells and bold mask of one task's table: rows = algorithms, columns = label budgets.

    ``cells`` holds ``"mean ± std"`` strings (:data:`MISSING_CELL` where an algorithm was
    not run); ``bold`` marks the lowest mean of each column, ties included. The upper bound
    (:data:`UPPER_BOUND`) is never bold: it trains on all labels, so winning is expected.
    """
    if which not in CHECKPOINTS:
        raise ValueError(f"which must be one of {sorted(CHECKPOINTS)}, got {which!r}")
    sub = summary.loc[summary["task"] == task]
    budgets = sorted(int(b) for b in sub["num_labels"].unique())
    algorithms = order_algorithms(sub["algorithm"])

    def grid(column: str) -> pd.DataFrame:
        table = sub.pivot(index="algorithm", columns="num_labels", values=column)
        return table.reindex(index=algorithms, columns=budgets).astype(float)

    mean = grid(f"{which}_test_error_mean")
    std = grid(f"{which}_test_error_std")
    cells = pd.DataFrame(
        [[format_cell(mean.at[a, b], std.at[a, b]) for b in budgets] for a in algorithms],
        index=pd.Index(algorithms, name="algorithm"),
        columns=pd.Index(budgets, name="num_labels"),
    )
    col_min = mean.drop(index=UPPER_BOUND, errors="ignore").min(axis=0)
    bold = pd.DataFrame(False, index=cells.index, columns=cells.columns)
    for b in budgets:
        if np.isfinite(col_min[b]):
            bold[b] = np.isclose(mean[b].to_numpy(), col_min[b]) & mean[b].notna().to_numpy()
    if UPPER_BOUND in bold.index:
        bold.loc[UPPER_BOUND] = False
    return cells, bold


def describe_runs(runs: pd.DataFrame) -> str:
    """One sentence saying what the report was computed from (all counts from the data)."""
    if runs.empty:
        return "No runs were found."
    tasks = sorted(runs["task"].unique())
    algorithms = order_algorithms(runs["algorithm"])
    seeds = sorted(int(s) for s in runs["seed"].unique())
    per_cell = runs.groupby(["task", "num_labels", "algorithm"])["seed"].nunique()
    lo, hi = int(per_cell.min()), int(per_cell.max())
    seeds_per_cell = str(lo) if lo == hi else f"{lo}–{hi}"
    devices = sorted(runs["device"].unique())
    return (
        f"{len(runs)} runs over {len(tasks)} task{'s' if len(tasks) != 1 else ''} "
        f"({', '.join(tasks)}), {len(algorithms)} algorithm"
        f"{'s' if len(algorithms) != 1 else ''} ({', '.join(algorithms)}) and "
        f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))}); "
        f"seeds per cell: {seeds_per_cell}; total training time "
        f"{runs['wall_time_s'].sum():.1f} s on {', '.join(devices)}."
        + _text_view_note(runs)
    )


def _text_view_note(runs: pd.DataFrame) -> str:
    """Say which text tasks used the token-edit stand-in instead of USB's back-translation."""
    if "text_strong_view" not in runs:
        return ""
    stand_in = runs.loc[runs["text_strong_view"].fillna("").str.startswith("token-edit"), "task"]
    if stand_in.empty:
        return ""
    return (f" Strong text view of {', '.join(sorted(stand_in.unique()))}: the token-edit "
            "stand-in, not USB's back-translation.")


def _md_escape(text: object) -> str:
    return str(text).replace("|", "\\|")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> str:
    lines = [
        "| " + " | ".join(_md_escape(h) for h in header) + " |",
        "|" + "|".join("---:" if a == "r" else ":---" for a in align) + "|",
    ]
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _task_domains(summary: pd.DataFrame) -> dict[str, str]:
    return {str(t): str(d) for t, d in summary.groupby("task", sort=True)["domain"].first().items()}


def render_markdown(
    runs: pd.DataFrame, baseline: str = LOWER_BOUND, published: Sequence[str] = ()
) -> str:
    """The text of ``summary.md``: per-task tables for best and last, the comparison with
    ``baseline``, then (if ``published`` names USB result tables) USB's published numbers."""
    summary = summarize(runs)
    parts = ["# SemiBench results", "", describe_runs(runs), ""]
    domains = _task_domains(summary)
    for which, heading in CHECKPOINTS.items():
        parts += [f"## {heading}", ""]
        parts += [
            f"Cells: mean ± std over seeds (sample std). Bold: lowest mean per label budget, "
            f"ignoring {UPPER_BOUND} (an upper bound trained on all labels).",
            "",
        ]
        for task, domain in domains.items():
            cells, bold = error_table(summary, task, which)
            header = ["algorithm", *(f"{b} labels" for b in cells.columns)]
            rows = [
                [
                    str(alg),
                    *(
                        f"**{cells.at[alg, b]}**" if bold.at[alg, b] else cells.at[alg, b]
                        for b in cells.columns
                    ),
                ]
                for alg in cells.index
            ]
            align = ["l", *("r" for _ in cells.columns)]
            parts += [f"### {task} ({domain})", "", _md_table(header, rows, align), ""]
    comparison = compare_to_baseline(runs, baseline=baseline)
    parts += [f"## Paired comparison with {baseline}", ""]
    if comparison.empty or not (runs["algorithm"] == baseline).any():
        parts += [f"No {baseline} runs to compare with.", ""]
    else:
        parts += [
            f"Difference in test error at the best-validation checkpoint (algorithm - {baseline}, "
            "percentage points; negative = better) over the seeds both have, with the two-sided "
            "paired t-test p-value (n/a with fewer than 2 shared seeds).",
            "",
        ]
        rows = [
            [
                str(r.task),
                str(r.num_labels),
                str(r.algorithm),
                str(r.n_shared_seeds),
                format_diff(r.mean_difference),
                format_p(r.p_value),
            ]
            for r in comparison.itertuples(index=False)
        ]
        header = ["task", "labels", "algorithm", "shared seeds", "mean difference", "p-value"]
        parts += [_md_table(header, rows, ["l", "r", "l", "r", "r", "r"]), ""]
    if published:
        table = usb.compare_to_published(summary, published)
        parts += [f"## USB's published error rates ({', '.join(published)})", "", usb.NOTE, ""]
        if table.empty:
            parts += ["None of these runs is a cell USB published.", ""]
        else:
            rows = [
                [str(r.task), str(r.num_labels), str(r.algorithm),
                 format_cell(r.ours_mean, r.ours_std), format_cell(r.usb_mean, r.usb_std),
                 format_diff(r.difference)]
                for r in table.itertuples(index=False)
            ]
            header = ["task", "labels", "algorithm", "ours", "USB", "difference"]
            parts += [_md_table(header, rows, ["l", "r", "l", "r", "r", "r"]), ""]
    return "\n".join(parts)


def write_tables(
    runs: pd.DataFrame, out_dir: str | Path, published: Sequence[str] = ()
) -> dict[str, Path]:
    """Write ``runs.csv``, ``summary.csv``, ``usb_published.csv`` and ``summary.md``
    atomically; return their paths.

    Keys are the file names. ``usb_published.csv`` compares with the USB result tables named
    in ``published`` (header only when none is named). Floats are written at full precision
    so that CSVs can be re-analysed without rounding artefacts; only the Markdown is rounded.
    """
    out_dir = Path(out_dir)
    names = ("runs.csv", "summary.csv", "usb_published.csv", "summary.md")
    paths = {name: out_dir / name for name in names}
    summary = summarize(runs)
    comparison = usb.compare_to_published(summary, published)
    for name, frame in (("runs.csv", runs), ("summary.csv", summary),
                        ("usb_published.csv", comparison)):
        atomic_write_text(paths[name], frame.to_csv(index=False, lineterminator="\n"))
    atomic_write_text(paths["summary.md"], render_markdown(runs, published=published))
    return paths
