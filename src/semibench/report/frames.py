"""The report's frames: their columns, in order, and the benchmark order of their rows (lower
bound first, upper bound last)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from semibench.metrics_file import METRICS
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
    # samples in the validation set that selected the best checkpoint (NaN: an older file)
    "val_size",
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
    # a swept run's point (semibench.sweep) as JSON, "" for none
    "sweep",
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


def sort_frame(frame: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Sort by task, num_labels, benchmark algorithm order, then ``extra``; fresh index."""
    if frame.empty:
        return frame.reset_index(drop=True)
    rank = frame["algorithm"].map(lambda a: algorithm_sort_key(a)[0])
    keyed = frame.assign(_alg_rank=rank)
    by = ["task", "num_labels", "_alg_rank", "algorithm", *extra]
    keyed = keyed.sort_values(by, kind="mergesort")
    return keyed.drop(columns="_alg_rank").reset_index(drop=True)
