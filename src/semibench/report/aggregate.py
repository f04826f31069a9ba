"""Collect every run's files into data frames, and the per-cell statistics all tables share.

The inputs are exactly the files a caller names (the ``metrics.json``, ``curve.csv`` and
Snakemake benchmark files of the runs the workflow declared): nothing is globbed and no path
is derived from another file's contents. Everything a report shows is computed from the frames
built here, so the CSVs, the Markdown, the LaTeX and the HTML page cannot disagree.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from semibench.metrics_file import METRICS, MetricsFormatError, read_metrics, run_composition
from semibench.report.layout import LOWER_BOUND, UPPER_BOUND

METRIC_TITLES: dict[str, str] = {
    "error": "Test error (%)",
    "top5_error": "Top-5 test error (%)",
    "balanced_error": "Balanced test error (%) (100 - mean per-class recall)",
    "macro_f1": "Test macro-F1 (%)",
    "gmean_recall": "Geometric mean of the per-class recalls (%)",
    "head_accuracy": "Head-class test accuracy (%) (most-labelled third of the classes)",
    "medium_accuracy": "Medium-class test accuracy (%)",
    "tail_accuracy": "Tail-class test accuracy (%) (least-labelled third of the classes)",
}
#: ``runs.csv`` columns of the metrics other than the error: best_<field>, last_<field>
EXTRA_METRIC_COLUMNS: tuple[str, ...] = tuple(
    f"{which}_{field}" for name, (field, _) in METRICS.items() if name != "error"
    for which in ("best", "last"))
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
    *EXTRA_METRIC_COLUMNS,
    "wall_time_s",
    "device",
    "threads",
    "precision",
    "text_strong_view",
    "job_wall_s",
    "job_cpu_s",
    "job_max_rss_mb",
    # what the run composed, as its metrics.json records it (never parsed from the label)
    "base_algorithm",
    "imbalance",
    "metrics_path",
)
#: columns of the expected-runs frame (``grid.csv``)
GRID_COLUMNS: tuple[str, ...] = ("task", "domain", "num_labels", "algorithm", "seed")
#: run keys that prefix ``curves.csv`` and ``per_class.csv``
KEY_COLUMNS: tuple[str, ...] = ("task", "num_labels", "algorithm", "seed")
#: columns of ``curve.csv`` as the trainer writes them
CURVE_COLUMNS: tuple[str, ...] = (
    "iteration", "lr", "loss", "sup_loss", "unsup_loss", "mask_ratio", "pseudo_label_acc",
    "val_error", "test_error", "elapsed_s",
)
PER_CLASS_COLUMNS: tuple[str, ...] = (*KEY_COLUMNS, "class_index", "class_name",
                                      "best_accuracy", "last_accuracy")
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
    *(f"{column}_{stat}" for column in EXTRA_METRIC_COLUMNS for stat in ("mean", "std")),
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
    "p_holm",
)
#: a paired test over fewer shared seeds than this means nothing: no p-value is given
MIN_SEEDS_FOR_TEST = 3
PAIRED_TEST = (
    "two-sided paired t-test over the seeds both runs have (a seed fixes the labelled split "
    "and the data order, so pairing by seed removes that variance), Holm–Bonferroni "
    "correction over every comparison in the table; no p-value with fewer than "
    f"{MIN_SEEDS_FOR_TEST} shared seeds"
)
#: what the two table sets show, keyed by the ``which`` argument of :func:`error_table`
CHECKPOINTS: dict[str, str] = {
    "best": "Test error (%) at the checkpoint with the lowest validation error",
    "last": "Test error (%) at the last evaluation",
}
MISSING_CELL = "–"


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


def precision(device: str, config: Any, recorded: str | None = None) -> str:
    """The arithmetic a run trained in: what metrics.json records (``precision``, the
    trainer's own answer), else inferred from ``train.amp`` for older files (bf16 or fp16
    autocast on a GPU, fp32 on the CPU); "not recorded" for a GPU run without either."""
    if recorded is not None:
        return "fp32" if recorded == "fp32" else f"{recorded} autocast"
    train = config.get("train") if isinstance(config, Mapping) else None
    amp = train.get("amp") if isinstance(train, Mapping) else None
    if device == "cpu":
        return "fp32"
    if amp is None:
        return "not recorded"
    return f"{amp} autocast" if amp in ("bf16", "fp16") else "fp32"


def _per_class(key: tuple, data: Mapping[str, Any], best: Mapping[str, Any],
               last: Mapping[str, Any]) -> list[dict[str, Any]]:
    best_acc = best.get("test_per_class_accuracy")
    if not isinstance(best_acc, list):
        return []
    last_acc = last.get("test_per_class_accuracy")
    if not isinstance(last_acc, list) or len(last_acc) != len(best_acc):
        last_acc = [math.nan] * len(best_acc)
    names = data.get("classes")
    if not isinstance(names, list) or len(names) != len(best_acc):
        names = [str(i) for i in range(len(best_acc))]
    return [
        dict(zip(KEY_COLUMNS, key, strict=True), class_index=i, class_name=str(name),
             best_accuracy=float(b) if b is not None else math.nan,
             last_accuracy=float(la) if la is not None else math.nan)
        for i, (name, b, la) in enumerate(zip(names, best_acc, last_acc, strict=True))
    ]


def _metric(record: Mapping[str, Any], field: str) -> float:
    """A recorded metric, NaN where the run predates it or it does not apply (top-5 error
    with five classes or fewer)."""
    value = record.get(field)
    return float(value) if value is not None else math.nan


def _read_run(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One row of :func:`collect_runs` and its per-class rows. The file is checked against
    the metrics.json schema first (:mod:`semibench.metrics_file`); a fault names the file and
    the field."""
    data = read_metrics(path)
    best, last = data["best"], data["last"]
    composition = run_composition(data)
    threads = data.get("threads")
    row = {
        "task": data["task"],
        "domain": data["domain"],
        "num_labels": data["num_labels"],
        "algorithm": data["algorithm"],
        "seed": data["seed"],
        "best_test_error": float(best["test_error"]),
        "last_test_error": float(last["test_error"]),
        "best_val_error": float(best["val_error"]),
        "best_iteration": best["iteration"],
        **{column: _metric(best if column.startswith("best_") else last,
                           column.split("_", 1)[1]) for column in EXTRA_METRIC_COLUMNS},
        "wall_time_s": float(data["wall_time_s"]),
        "device": data["device"],
        "threads": threads if threads is not None else math.nan,
        "precision": precision(data["device"], data.get("config"), data.get("precision")),
        # text runs: back-translation (USB) or the token-edit stand-in; "" elsewhere
        "text_strong_view": str(data.get("text_strong_view") or ""),
        "job_wall_s": math.nan,
        "job_cpu_s": math.nan,
        "job_max_rss_mb": math.nan,
        "base_algorithm": composition[0],
        "imbalance": composition[1] or "",  # "" for none, as text_strong_view
        "metrics_path": str(path),
    }
    key = tuple(row[k] for k in KEY_COLUMNS)
    return row, _per_class(key, data, best, last)


def read_benchmark(path: str | Path) -> dict[str, float]:
    """Wall time, CPU time and peak resident memory of one job from Snakemake's benchmark
    file (a TSV with columns ``s``, ``cpu_time``, ``max_rss`` in MB; the last line is the
    last attempt). Unmeasured values ("NA", "-") are NaN."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, sep="\t", na_values=["NA", "-", ""])
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: cannot read Snakemake benchmark file: {err}") from err
    if frame.empty or "s" not in frame.columns:
        raise ValueError(f"{path}: not a Snakemake benchmark file (no 's' column)")
    row = frame.iloc[-1]

    def number(column: str) -> float:
        value = pd.to_numeric(row.get(column, math.nan), errors="coerce")
        return float(value) if pd.notna(value) else math.nan

    return {"job_wall_s": number("s"), "job_cpu_s": number("cpu_time"),
            "job_max_rss_mb": number("max_rss")}


def read_curve(path: str | Path) -> pd.DataFrame:
    """The evaluated rows of one ``curve.csv``, numeric, sorted by iteration."""
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: cannot read curve file: {err}") from err
    missing = {"iteration", "val_error"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: curve file lacks column(s) {', '.join(sorted(missing))}")
    out = pd.DataFrame({c: pd.to_numeric(frame[c], errors="coerce") if c in frame.columns
                        else np.nan for c in CURVE_COLUMNS})
    out = out.dropna(subset=["iteration", "val_error"])
    return out.sort_values("iteration", kind="mergesort").reset_index(drop=True)


@dataclass(frozen=True)
class Results:
    """Everything read from the runs' files: one row per run, per evaluation, per class."""

    runs: pd.DataFrame
    curves: pd.DataFrame
    per_class: pd.DataFrame


def _check_pairs(kind: str, paths: Sequence[Path], metrics: Sequence[Path]) -> None:
    if paths and len(paths) != len(metrics):
        raise ValueError(f"{len(paths)} {kind} file(s) for {len(metrics)} metrics files: "
                         f"give one per run, in the order of the metrics files")


def collect(
    metrics_paths: Sequence[str | Path],
    curve_paths: Sequence[str | Path] = (),
    benchmark_paths: Sequence[str | Path] = (),
) -> Results:
    """Read the named files of a set of runs.

    ``curve_paths`` and ``benchmark_paths`` (either may be empty) are given in the order of
    ``metrics_paths``, one per run; a curve must sit next to its metrics file. A run whose
    benchmark file is missing (a partial report, a run made outside Snakemake) gets NaN job
    costs. Raises :class:`MetricsFormatError` naming the file for unreadable or incomplete
    metrics and for two files claiming the same (task, num_labels, algorithm, seed).
    """
    metrics = [Path(p) for p in metrics_paths]
    curves = [Path(p) for p in curve_paths]
    benchmarks = [Path(p) for p in benchmark_paths]
    _check_pairs("curve", curves, metrics)
    _check_pairs("benchmark", benchmarks, metrics)
    rows: list[dict[str, Any]] = []
    per_class: list[dict[str, Any]] = []
    curve_frames: list[pd.DataFrame] = []
    seen: dict[tuple, str] = {}
    for i, path in enumerate(metrics):
        row, classes = _read_run(path)
        key = tuple(row[k] for k in KEY_COLUMNS)
        if key in seen:
            raise MetricsFormatError(f"{path}: duplicate run {key} (also in {seen[key]})")
        seen[key] = str(path)
        if benchmarks and benchmarks[i].exists():
            row.update(read_benchmark(benchmarks[i]))
        if curves:
            if curves[i].parent != path.parent:
                raise ValueError(f"{curves[i]}: curve file is not next to its metrics file "
                                 f"{path}")
            if curves[i].exists():
                curve = read_curve(curves[i])
                for k, v in zip(KEY_COLUMNS, key, strict=True):
                    curve.insert(KEY_COLUMNS.index(k), k, v)
                curve_frames.append(curve)
        rows.append(row)
        per_class += classes
    runs = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    if runs.empty:
        runs = runs.astype(
            {"num_labels": "int64", "seed": "int64", "best_iteration": "int64"}
            | {c: "float64" for c in RUN_COLUMNS if c.endswith(("_error", "_s", "_mb"))}
        )
    curve_frame = (pd.concat(curve_frames, ignore_index=True) if curve_frames
                   else pd.DataFrame(columns=[*KEY_COLUMNS, *CURVE_COLUMNS]))
    return Results(
        runs=_sort_frame(runs, extra=["seed"]),
        curves=_sort_frame(curve_frame, extra=["seed", "iteration"]) if curve_frames
        else curve_frame,
        per_class=_sort_frame(pd.DataFrame(per_class, columns=list(PER_CLASS_COLUMNS)),
                              extra=["seed", "class_index"]),
    )


def collect_runs(
    metrics_paths: Sequence[str | Path], benchmark_paths: Sequence[str | Path] = ()
) -> pd.DataFrame:
    """One row per run (columns :data:`RUN_COLUMNS`), sorted in benchmark order."""
    return collect(metrics_paths, benchmark_paths=benchmark_paths).runs


def grid_frame(grid: Iterable[Sequence[Any]], domains: Mapping[str, str]) -> pd.DataFrame:
    """The expected runs (``grid.csv``): (task, num_labels, algorithm, seed) tuples of the
    config, with each task's domain from ``domains``."""
    rows = [
        {"task": str(t), "domain": str(domains[str(t)]), "num_labels": int(n),
         "algorithm": str(a), "seed": int(s)}
        for t, n, a, s in grid
    ]
    frame = pd.DataFrame(rows, columns=list(GRID_COLUMNS))
    if frame.empty:
        frame = frame.astype({"num_labels": "int64", "seed": "int64"})
    return _sort_frame(frame, extra=["seed"])


def grid_from_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """When no grid is known, the runs that exist are what was expected."""
    return _sort_frame(runs[list(GRID_COLUMNS)].drop_duplicates(), extra=["seed"])


def missing_runs(runs: pd.DataFrame, grid: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``grid`` without a finished run."""
    if grid.empty:
        return grid.copy()
    done = set(runs[list(KEY_COLUMNS)].itertuples(index=False, name=None)) if len(runs) else set()
    keep = [tuple(r) not in done for r in grid[list(KEY_COLUMNS)].itertuples(index=False)]
    return grid.loc[keep].reset_index(drop=True)


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
            **{f"{column}_{stat}": (column, fn) for column in EXTRA_METRIC_COLUMNS
               if column in runs.columns for stat, fn in _STRICT_STATS.items()},
        )
        .reset_index()
    )
    return _sort_frame(summary.reindex(columns=list(SUMMARY_COLUMNS)))


#: mean and std of a metric that some runs of a cell lack (runs older than the metric) are
#: NaN, never the statistic of the runs that have it
_STRICT_STATS: dict[str, Any] = {"mean": lambda s: s.mean(skipna=False),
                                 "std": lambda s: s.std(ddof=1, skipna=False)}


def cells(runs: pd.DataFrame, grid: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`summarize` for every expected (task, num_labels, algorithm) cell of ``grid``
    (default: the cells that have runs), with ``expected_seeds`` and ``status``: "complete",
    "partial" (fewer seeds than expected) or "missing" (none). A cell is never dropped."""
    if grid is None:
        grid = grid_from_runs(runs) if len(runs) else pd.DataFrame(columns=list(GRID_COLUMNS))
    keys = ["task", "num_labels", "algorithm"]
    expected = (grid.groupby(keys, sort=False)
                .agg(domain=("domain", "first"), expected_seeds=("seed", "nunique"))
                .reset_index())
    summary = summarize(runs)
    if summary.empty:
        summary = pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    merged = expected.merge(summary.drop(columns="domain"), on=keys, how="outer")
    if merged.empty:
        return pd.DataFrame(columns=[*SUMMARY_COLUMNS, "expected_seeds", "status"])
    domain = summary.set_index(keys)["domain"] if len(summary) else pd.Series(dtype=object)
    merged["domain"] = [
        d if isinstance(d, str) else domain.get(tuple(k), "")
        for d, k in zip(merged["domain"], merged[keys].itertuples(index=False), strict=True)
    ]
    merged["n_seeds"] = merged["n_seeds"].fillna(0).astype(int)
    merged["expected_seeds"] = np.maximum(merged["expected_seeds"].fillna(0).astype(int),
                                          merged["n_seeds"])
    merged["status"] = np.where(
        merged["n_seeds"] == 0, "missing",
        np.where(merged["n_seeds"] < merged["expected_seeds"], "partial", "complete"))
    merged["num_labels"] = merged["num_labels"].astype(int)
    return _sort_frame(merged[[*SUMMARY_COLUMNS, "expected_seeds", "status"]])


def composition_base(runs: pd.DataFrame) -> dict[str, str]:
    """Each composed run label's base algorithm (``fixmatch_debiaspl`` -> ``fixmatch``), read
    from the runs' recorded fields (the ``base_algorithm`` and ``imbalance`` columns, from
    metrics.json), never from the label. A run without an imbalance method (a plugin's
    ``fixmatch_v2`` among them, and every run of a file or table older than the fields) has
    no base."""
    if "imbalance" not in runs.columns or "base_algorithm" not in runs.columns:
        return {}
    bases: dict[str, str] = {}
    for label, base, method in runs[["algorithm", "base_algorithm", "imbalance"]].itertuples(
            index=False):
        if isinstance(method, str) and method:
            bases[str(label)] = str(base)
    return bases


def compare_to_baseline(
    runs: pd.DataFrame, baseline: str = LOWER_BOUND, metric: str = "best_test_error"
) -> pd.DataFrame:
    """Paired comparison of every algorithm with ``baseline`` on the seeds both have, and of
    every composed algorithm (``<base>_<method>``, an imbalance method) with its base.

    Pairing by seed removes the variance that comes from the labelled split, which the two
    runs share. ``mean_difference`` = algorithm - baseline (negative: fewer errors);
    ``p_value`` is the two-sided paired t-test (:func:`scipy.stats.ttest_rel`), NaN with
    fewer than :data:`MIN_SEEDS_FOR_TEST` shared seeds; ``p_holm`` is the Holm-Bonferroni
    adjusted p-value over every comparison that has one (statsmodels' ``multipletests``).
    The upper bound is not compared: it sees every label.
    """
    if metric not in runs.columns:
        raise ValueError(f"unknown metric {metric!r}; columns: {', '.join(runs.columns)}")
    rows: list[dict[str, Any]] = []
    bases = composition_base(runs)
    for (task, num_labels), group in runs.groupby(["task", "num_labels"], sort=False):
        by_algorithm = {a: g.set_index("seed")[metric]
                        for a, g in group.groupby("algorithm", sort=False)}
        pairs = [(a, baseline) for a in by_algorithm
                 if baseline in by_algorithm and a not in (baseline, UPPER_BOUND)]
        pairs += [(a, bases[a]) for a in by_algorithm
                  if a in bases and bases[a] in by_algorithm]
        for algorithm, against in pairs:
            values, base = by_algorithm[algorithm], by_algorithm[against]
            shared = sorted(set(values.index) & set(base.index))
            a = values.loc[shared].to_numpy(dtype=float)
            b = base.loc[shared].to_numpy(dtype=float)
            p_value = math.nan
            if len(shared) >= MIN_SEEDS_FOR_TEST:
                with warnings.catch_warnings():
                    # identical differences make the t statistic degenerate; scipy warns
                    warnings.simplefilter("ignore", RuntimeWarning)
                    p_value = float(stats.ttest_rel(a, b).pvalue)
            rows.append(
                {
                    "task": task,
                    "num_labels": num_labels,
                    "algorithm": algorithm,
                    "baseline": against,
                    "n_shared_seeds": len(shared),
                    "algorithm_mean": float(a.mean()) if shared else math.nan,
                    "baseline_mean": float(b.mean()) if shared else math.nan,
                    "mean_difference": float((a - b).mean()) if shared else math.nan,
                    "p_value": p_value,
                    "p_holm": math.nan,
                }
            )
    frame = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    tested = frame["p_value"].notna()
    if tested.any():
        frame.loc[tested, "p_holm"] = multipletests(frame.loc[tested, "p_value"],
                                                    method="holm")[1]
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


def plural(n: int, word: str) -> str:
    """"1 setting", "2 settings"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def format_test_p(p: float, n_shared: int) -> str:
    """A paired test's p-value, or why there is none."""
    if n_shared < MIN_SEEDS_FOR_TEST:
        return f"too few seeds ({n_shared})"
    return format_p(p)


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


def run_count(runs: pd.DataFrame, grid: pd.DataFrame | None) -> tuple[int, int]:
    """(finished, expected) runs of ``grid`` (without a grid: the runs there are)."""
    if grid is None or grid.empty:
        return len(runs), len(runs)
    return len(grid) - len(missing_runs(runs, grid)), len(grid)


def describe_runs(runs: pd.DataFrame, grid: pd.DataFrame | None = None) -> str:
    """One sentence saying what the report was computed from (all counts from the data)."""
    done, expected = run_count(runs, grid)
    if runs.empty:
        return f"No runs have finished (0 of {expected} runs)." if expected else \
            "No runs were found."
    tasks = sorted(runs["task"].unique())
    algorithms = order_algorithms(runs["algorithm"])
    seeds = sorted(int(s) for s in runs["seed"].unique())
    per_cell = runs.groupby(["task", "num_labels", "algorithm"])["seed"].nunique()
    lo, hi = int(per_cell.min()), int(per_cell.max())
    seeds_per_cell = str(lo) if lo == hi else f"{lo}–{hi}"
    devices = sorted(runs["device"].unique())
    return (
        f"{done} of {expected} runs over {len(tasks)} task{'s' if len(tasks) != 1 else ''} "
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
    stand_in = runs.loc[runs["text_strong_view"].fillna("").astype(str)
                        .str.startswith("token-edit"), "task"]
    if stand_in.empty:
        return ""
    return (f" Strong text view of {', '.join(sorted(stand_in.unique()))}: the token-edit "
            "stand-in, not USB's back-translation.")
