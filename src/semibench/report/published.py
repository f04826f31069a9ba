"""USB's published error rates next to ours, so that a run of ``config/usb.yaml`` or
``config/classic_cv.yaml`` is checked against the paper without anyone assembling a table.

``data/usb_published_error_rates.csv`` holds USB's result tables (``results/usb_cv.csv``,
``usb_nlp.csv``, ``usb_audio.csv`` and ``classic_cv.csv`` of microsoft/Semi-supervised-learning:
test error in %, mean ± std over 3 seeds), one row per (benchmark, task, num_labels, algorithm).
Two caveats the report states with the table: USB selects its CV checkpoints on the test set
(no validation split; USB issue #98), which flatters its CV numbers against ours (selected on
validation); and USB's authors say the CSVs are newer than the paper and differ from it.

USB's imbalanced table (``data/usb_published_imb_error_rates.csv``) has one row per long-tailed
setting: the gammas (a negative ``ulb_gamma`` is a reversed unlabelled distribution) and M1
(``ulb_head``). Given each configured task's registered task and ``long_tailed`` section
(:func:`semibench.variants.task_settings`), a run is set next to the row of the same registered
task, N1, algorithm *and* setting, so one benchmark whose task variants hold several settings
(``config/classic_cv_imb.yaml``) is compared with all of them at once; a balanced task only with
USB's balanced tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import pandas as pd

#: USB's result tables, in the order the report lists them
BENCHMARKS: tuple[str, ...] = ("usb_cv", "usb_nlp", "usb_audio", "classic_cv", "classic_cv_imb",
                               "classic_cv_imb_strong", "classic_cv_imb_reversed")
#: USB's imbalanced table (results/classic_cv_imb.csv reports accuracy: converted to error,
#: see the file's header), one benchmark name per long-tailed setting
IMBALANCED_TABLE = "usb_published_imb_error_rates.csv"
#: the columns of the imbalanced table that name a row's long-tailed setting
SETTING_COLUMNS: tuple[str, ...] = ("lb_gamma", "ulb_gamma", "ulb_head")
#: the setting of a balanced task and of every row of USB's balanced tables
BALANCED = "balanced"
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
    error_mean, error_std, and the long-tailed setting: lb_gamma, ulb_gamma, ulb_head, NaN in
    the rows of the balanced tables)."""
    unknown = sorted(set(benchmarks) - set(BENCHMARKS))
    if unknown:
        raise ValueError(f"unknown USB result table(s) {unknown}; allowed: {list(BENCHMARKS)}")
    data = resources.files("semibench.report") / "data"
    with (data / "usb_published_error_rates.csv").open("r", encoding="utf-8") as handle:
        table = pd.read_csv(handle)
    with (data / IMBALANCED_TABLE).open("r", encoding="utf-8") as handle:
        imbalanced = pd.read_csv(handle, comment="#")
    table = pd.concat([table, imbalanced[[*table.columns, *SETTING_COLUMNS]]], ignore_index=True)
    return table.loc[table["benchmark"].isin(list(benchmarks))].reset_index(drop=True)


def _number(value: float) -> str:
    return f"{float(value):g}"


def setting_name(lb_gamma: Any = None, ulb_gamma: Any = None, ulb_head: Any = None,
                 include_labelled: bool = False) -> str:
    """One string per long-tailed setting, equal for ours and USB's: ``l100_u-100_m3000``
    (a negative unlabelled gamma: reversed; ``mall``: no M1, every remaining sample), or
    :data:`BALANCED`."""
    def missing(value: Any) -> bool:
        return value is None or (isinstance(value, float) and math.isnan(value))

    if missing(lb_gamma):
        return BALANCED
    head = "all" if missing(ulb_head) else str(int(ulb_head))
    # without M1 the unlabelled set is every remaining sample: its gamma shapes nothing
    ulb = "1" if head == "all" else _number(ulb_gamma)
    return f"l{_number(lb_gamma)}_u{ulb}_m{head}" + ("_inc" if include_labelled else "")


def run_setting(long_tailed: Mapping[str, Any] | None, num_labels: int) -> str:
    """:func:`setting_name` of a task's ``long_tailed`` section for one N1."""
    if not long_tailed:
        return BALANCED
    from semibench.splits_lt import long_tailed_setting

    lt = long_tailed_setting(dict(long_tailed), int(num_labels))
    return setting_name(lt.lb_gamma, -lt.ulb_gamma if lt.ulb_reversed else lt.ulb_gamma,
                        lt.ulb_head, lt.include_labelled_in_unlabelled)


def compare_to_published(summary: pd.DataFrame, benchmarks: Sequence[str],
                         tasks: Mapping[str, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """One row per (task, num_labels, algorithm) of ``summary`` that USB published.

    ``summary`` is :func:`semibench.report.aggregate.summarize`'s frame, or
    :func:`~semibench.report.aggregate.cells` (every configured cell: one without a finished
    run is kept, with NaN for ours). ``within_2std``: our mean lies inside USB's mean ± 2 std
    (NaN where ours is missing). ``tasks``: per configured task, ``base`` (the registered task
    it reads, :func:`semibench.variants.base_task`) and ``long_tailed`` (its section or None),
    as :func:`semibench.variants.task_settings` gives them. A cell matches a row when the
    registered task, the label budget (after :data:`BUDGET_ALIASES`), the algorithm and the
    long-tailed setting (:func:`run_setting`: gammas, reversed, M1; balanced) are equal; a
    task that ``tasks`` does not name is matched by its name, budget and algorithm alone.
    Cells USB did not publish are left out. Benchmarks are tried in the given order, so a
    cell that two USB tables share (CIFAR-100 with 400 labels is in both ``usb_cv`` and
    ``classic_cv``) is compared with the table the config names first.
    """
    if summary.empty or not benchmarks:
        return pd.DataFrame(columns=list(COLUMNS))
    tasks = tasks or {}
    published = load_published(benchmarks)
    rank = {name: i for i, name in enumerate(benchmarks)}
    published = (
        published.assign(
            _rank=published["benchmark"].map(rank),
            _setting=[setting_name(*values) for values in
                      published[list(SETTING_COLUMNS)].itertuples(index=False, name=None)])
        .sort_values("_rank", kind="mergesort")
        .rename(columns={"benchmark": "usb_benchmark", "num_labels": "usb_num_labels",
                         "error_mean": "usb_mean", "error_std": "usb_std", "task": "_base"})
    )
    bases = [str(tasks[str(t)]["base"]) if str(t) in tasks else str(t) for t in summary["task"]]
    ours = summary.assign(
        _order=range(len(summary)),
        _base=bases,
        _setting=[
            run_setting(tasks[str(t)].get("long_tailed"), int(n)) if str(t) in tasks else None
            for t, n in zip(summary["task"], summary["num_labels"], strict=True)],
        usb_num_labels=[
            BUDGET_ALIASES.get((b, int(n)), int(n))
            for b, n in zip(bases, summary["num_labels"], strict=True)
        ],
        ours_mean=summary["best_test_error_mean"],
        ours_std=summary["best_test_error_std"],
    )
    keys = ["_base", "usb_num_labels", "algorithm"]
    known = ours["_setting"].notna()
    parts = [  # the setting known: it must match; else (no task settings given) any row does
        ours.loc[known].merge(published.drop_duplicates([*keys, "_setting"]),
                              on=[*keys, "_setting"], how="inner"),
        ours.loc[~known].drop(columns="_setting").merge(
            published.drop_duplicates(keys), on=keys, how="inner"),
    ]
    merged = pd.concat([p for p in parts if len(p)] or [parts[0]], ignore_index=True)
    merged = merged.sort_values("_order", kind="mergesort")
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
