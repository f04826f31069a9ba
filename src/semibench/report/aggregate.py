"""Paired comparisons: every algorithm against the lower bound, and a composed algorithm
(``<base>_<method>``) against its base, on the seeds both have; how their p-values read.

The rest of what this module once held lives by responsibility: reading the runs' files
(:mod:`~semibench.report.reading`), the frames' columns and order (:mod:`~semibench.report.frames`),
per-cell summaries (:mod:`~semibench.report.summaries`) and display formatting
(:mod:`~semibench.report.formatting`); their names stay importable from here.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from semibench.metrics_file import METRICS, MetricsFormatError  # noqa: F401
from semibench.report.formatting import (  # noqa: F401
    CHECKPOINTS,
    MISSING_CELL,
    error_table,
    format_cell,
    format_diff,
    format_hours,
    format_p,
    plural,
)
from semibench.report.frames import (  # noqa: F401
    COMPARISON_COLUMNS,
    CURVE_COLUMNS,
    EXTRA_METRIC_COLUMNS,
    GRID_COLUMNS,
    KEY_COLUMNS,
    METRIC_TITLES,
    PER_CLASS_COLUMNS,
    RUN_COLUMNS,
    SUMMARY_COLUMNS,
    algorithm_sort_key,
    order_algorithms,
    sort_frame,
)
from semibench.report.frames import sort_frame as _sort_frame
from semibench.report.layout import LOWER_BOUND, UPPER_BOUND
from semibench.report.reading import (  # noqa: F401
    Results,
    collect,
    collect_runs,
    precision,
    read_benchmark,
    read_curve,
)
from semibench.report.summaries import (  # noqa: F401
    cells,
    describe_runs,
    grid_frame,
    grid_from_runs,
    missing_runs,
    run_count,
    summarize,
)

#: a paired test over fewer shared seeds than this means nothing: no p-value is given
MIN_SEEDS_FOR_TEST = 3
PAIRED_TEST = (
    "two-sided paired t-test over the seeds both runs have (a seed fixes the labelled split "
    "and the data order, so pairing by seed removes that variance), Holm–Bonferroni "
    "correction over every comparison in the table; no p-value with fewer than "
    f"{MIN_SEEDS_FOR_TEST} shared seeds"
)


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


def format_test_p(p: float, n_shared: int) -> str:
    """A paired test's p-value, or why there is none."""
    if n_shared < MIN_SEEDS_FOR_TEST:
        return f"too few seeds ({n_shared})"
    return format_p(p)
