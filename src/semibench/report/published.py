"""USB's published error rates next to ours, so that a run of ``config/usb.yaml`` or
``config/classic_cv.yaml`` is checked against the paper without anyone assembling a table.

``data/usb_published_error_rates.csv`` holds USB's result tables (``results/usb_cv.csv``,
``usb_nlp.csv``, ``usb_audio.csv`` and ``classic_cv.csv`` of microsoft/Semi-supervised-learning:
test error in %, mean ± std over 3 seeds), one row per (benchmark, task, num_labels, algorithm).
Two caveats the report states with the table: USB selects its CV checkpoints on the test set
(no validation split; USB issue #98), which flatters its CV numbers against ours (selected on
validation); and USB's authors say the CSVs are newer than the paper and differ from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import pandas as pd

#: USB's result tables, in the order the report lists them
BENCHMARKS: tuple[str, ...] = ("usb_cv", "usb_nlp", "usb_audio", "classic_cv", "classic_cv_imb",
                               "classic_cv_imb_strong", "classic_cv_imb_reversed")
#: USB's imbalanced table (results/classic_cv_imb.csv reports accuracy: converted to error,
#: see the file's header), one benchmark name per long-tailed setting
IMBALANCED_TABLE = "usb_published_imb_error_rates.csv"
#: (task, our label budget) -> USB's: the same labelled set, counted differently by USB
#: (FSDnoisy18k's clean subset has 1,772 clips; USB reports 1,773, see tasks/fsdnoisy18k.py)
BUDGET_ALIASES: dict[tuple[str, int], int] = {("fsdnoisy18k", 1772): 1773}
#: columns of :func:`compare_to_published`, in order
COLUMNS: tuple[str, ...] = (
    "task",
    "num_labels",
    "algorithm",
    "n_seeds",
    "ours_mean",
    "ours_std",
    "usb_benchmark",
    "usb_mean",
    "usb_std",
    "difference",
    "within_2std",
)
NOTE = (
    "USB's published test error (%, mean ± std over 3 seeds, from its result CSVs) next to "
    "ours at the best-validation checkpoint; difference = ours − USB (negative = fewer errors). "
    "USB picks its vision checkpoints on the test set (no validation split, USB issue #98), "
    "which makes its vision numbers optimistic; its authors note the CSVs differ from the paper."
)


def load_published(benchmarks: Sequence[str] = BENCHMARKS) -> pd.DataFrame:
    """USB's rows for ``benchmarks`` (columns benchmark, task, num_labels, algorithm,
    error_mean, error_std)."""
    unknown = sorted(set(benchmarks) - set(BENCHMARKS))
    if unknown:
        raise ValueError(f"unknown USB result table(s) {unknown}; allowed: {list(BENCHMARKS)}")
    data = resources.files("semibench.report") / "data"
    with (data / "usb_published_error_rates.csv").open("r", encoding="utf-8") as handle:
        table = pd.read_csv(handle)
    with (data / IMBALANCED_TABLE).open("r", encoding="utf-8") as handle:
        imbalanced = pd.read_csv(handle, comment="#")
    table = pd.concat([table, imbalanced[list(table.columns)]], ignore_index=True)
    return table.loc[table["benchmark"].isin(list(benchmarks))].reset_index(drop=True)


def compare_to_published(summary: pd.DataFrame, benchmarks: Sequence[str]) -> pd.DataFrame:
    """One row per (task, num_labels, algorithm) of ``summary`` that USB published.

    ``summary`` is :func:`semibench.report.aggregate.summarize`'s frame, or
    :func:`~semibench.report.aggregate.cells` (every configured cell: one without a finished
    run is kept, with NaN for ours). ``within_2std``: our mean lies inside USB's mean ± 2 std
    (NaN where ours is missing). A cell matches when
    the task, the label budget (after :data:`BUDGET_ALIASES`) and the algorithm are equal;
    cells USB did not publish are left out. Benchmarks are tried in the given order, so a
    task that two USB tables share (CIFAR-100 with 400 labels is in both ``usb_cv`` and
    ``classic_cv``) is compared with the table the config names first.
    """
    if summary.empty or not benchmarks:
        return pd.DataFrame(columns=list(COLUMNS))
    published = load_published(benchmarks)
    rank = {name: i for i, name in enumerate(benchmarks)}
    published = (
        published.assign(_rank=published["benchmark"].map(rank))
        .sort_values("_rank", kind="mergesort")
        .drop_duplicates(["task", "num_labels", "algorithm"])
        .rename(columns={"benchmark": "usb_benchmark", "num_labels": "usb_num_labels",
                         "error_mean": "usb_mean", "error_std": "usb_std"})
    )
    ours = summary.assign(
        usb_num_labels=[
            BUDGET_ALIASES.get((str(t), int(n)), int(n))
            for t, n in zip(summary["task"], summary["num_labels"], strict=True)
        ],
        ours_mean=summary["best_test_error_mean"],
        ours_std=summary["best_test_error_std"],
    )
    merged = ours.merge(published, on=["task", "usb_num_labels", "algorithm"], how="inner")
    merged["difference"] = merged["ours_mean"] - merged["usb_mean"]
    inside = (merged["difference"].abs() <= 2 * merged["usb_std"]).astype(object)
    merged["within_2std"] = inside.where(merged["ours_mean"].notna(), None)
    return merged[list(COLUMNS)].reset_index(drop=True)


def summary_line(table: pd.DataFrame) -> str:
    """One line: on how many published cells ours is inside USB's mean ± 2 std."""
    if table.empty:
        return "None of this benchmark's cells is one USB published."
    done = table.loc[table["ours_mean"].notna()]
    inside = int((done["within_2std"] == True).sum())  # noqa: E712 (object column)
    text = (f"Ours is inside USB's mean ± 2 std on {inside} of {len(done)} published "
            f"cell{'s' if len(done) != 1 else ''}")
    missing = len(table) - len(done)
    return text + (f" ({missing} more not finished yet)." if missing else ".")
