"""Statistics across settings: Friedman test, Nemenyi post-hoc test, critical difference.

Following Demšar (2006, "Statistical comparisons of classifiers over multiple data sets",
JMLR 7): every setting (task x label budget) is a block, the compared algorithms are ranked
within each block by their mean test error over seeds (rank 1 = fewest errors, ties share the
average rank), and

- the Friedman test (:func:`scipy.stats.friedmanchisquare`) asks whether all algorithms have
  the same mean rank;
- the Nemenyi post-hoc test (:func:`scikit_posthocs.posthoc_nemenyi_friedman`) gives a p-value
  per pair; the critical-difference diagram
  (:func:`scikit_posthocs.critical_difference_diagram`) joins the algorithms it cannot tell
  apart;
- the critical difference CD = q_alpha sqrt(k(k+1) / 6N), with q_alpha the studentized range
  quantile over sqrt(2) (:data:`scipy.stats.studentized_range`), is drawn on the diagram.

The test needs complete blocks: an algorithm that is not configured on every setting of a
group is left out of that group's test (and named), and a setting on which a compared
algorithm has not finished yet is left out (a partial report says how many are used). With
fewer than :data:`~semibench.report.layout.MIN_SETTINGS` settings or
:data:`~semibench.report.layout.MIN_ALGORITHMS` algorithms no p-value is given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scikit_posthocs as sp
from scipy import stats

from semibench.report.layout import (
    DOMAIN_TITLES,
    MIN_ALGORITHMS,
    MIN_SETTINGS,
    compared_algorithms,
    group_tasks,
    statistics_groups,
)

ALPHA = 0.05
STATISTICS_COLUMNS: tuple[str, ...] = (
    "group", "status", "n_settings", "n_settings_expected", "n_algorithms", "algorithms",
    "excluded", "friedman_chi2", "p_value", "critical_difference", "alpha", "message",
)
RANK_COLUMNS: tuple[str, ...] = ("group", "algorithm", "mean_rank", "n_settings")
POSTHOC_COLUMNS: tuple[str, ...] = ("group", "algorithm", "other", "p_value", "significant")


@dataclass(frozen=True)
class FriedmanResult:
    """One group's test. ``status``: "tested", "too few settings" or "too few algorithms"."""

    group: str
    status: str
    message: str
    settings: list[tuple[str, int]]
    n_settings_expected: int
    algorithms: list[str]
    excluded: list[str]
    mean_ranks: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    statistic: float = math.nan
    p_value: float = math.nan
    posthoc: pd.DataFrame | None = None
    critical_difference: float = math.nan
    alpha: float = ALPHA

    @property
    def tested(self) -> bool:
        return self.status == "tested"

    @property
    def title(self) -> str:
        return DOMAIN_TITLES.get(self.group, self.group)


def error_matrix(cells: pd.DataFrame, tasks: Sequence[str], which: str = "best") -> pd.DataFrame:
    """Mean test error over seeds: rows = settings (task, num_labels), columns = algorithms
    (NaN where a cell has no finished run). ``cells``: :func:`aggregate.cells`."""
    sub = cells.loc[cells["task"].isin(list(tasks))]
    if sub.empty:
        return pd.DataFrame()
    matrix = sub.pivot_table(index=["task", "num_labels"], columns="algorithm",
                             values=f"{which}_test_error_mean", aggfunc="first", dropna=False)
    return matrix.sort_index()


def within_setting_ranks(matrix: pd.DataFrame) -> pd.DataFrame:
    """Rank of each algorithm within each setting (row): 1 = lowest error, ties averaged."""
    return matrix.rank(axis=1, method="average", ascending=True)


def critical_difference(k: int, n: int, alpha: float = ALPHA) -> float:
    """Nemenyi's critical difference of mean ranks for k algorithms on n settings."""
    q_alpha = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q_alpha * math.sqrt(k * (k + 1) / (6.0 * n)))


def friedman(cells: pd.DataFrame, group: str, tasks: Sequence[str], which: str = "best",
             alpha: float = ALPHA) -> FriedmanResult:
    """The Friedman test of one group (see the module docstring)."""
    expected = cells.loc[cells["task"].isin(list(tasks))]
    settings_all = sorted({(str(t), int(n)) for t, n in
                           zip(expected["task"], expected["num_labels"], strict=True)})
    per_setting: dict[tuple[str, int], set[str]] = {s: set() for s in settings_all}
    for t, n, a in zip(expected["task"], expected["num_labels"], expected["algorithm"],
                       strict=True):
        per_setting[(str(t), int(n))].add(str(a))
    everywhere = set.intersection(*per_setting.values()) if per_setting else set()
    present = compared_algorithms(expected["algorithm"])
    algorithms = compared_algorithms(everywhere)
    excluded = [a for a in present if a not in algorithms]
    matrix = error_matrix(cells, tasks, which)
    if algorithms and not matrix.empty:
        matrix = matrix.reindex(columns=algorithms).dropna(axis=0, how="any")
    else:
        matrix = pd.DataFrame(columns=algorithms)
    settings = [(str(t), int(n)) for t, n in matrix.index]
    k, n = len(algorithms), len(settings)
    base = dict(group=group, settings=settings, n_settings_expected=len(settings_all),
                algorithms=algorithms, excluded=excluded, alpha=alpha)
    ranks = within_setting_ranks(matrix).mean(axis=0) if n and k >= 2 else pd.Series(dtype=float)
    finished = (f"{n} of {len(settings_all)} settings have every compared algorithm finished"
                if n < len(settings_all) else f"{n} setting{'' if n == 1 else 's'}")
    if k < MIN_ALGORITHMS:
        return FriedmanResult(
            status="too few algorithms", mean_ranks=ranks,
            message=f"Too few algorithms for a Friedman test: {k} compared on every setting "
                    f"({', '.join(algorithms) or 'none'}); it needs {MIN_ALGORITHMS}.", **base)
    if n < MIN_SETTINGS:
        return FriedmanResult(
            status="too few settings", mean_ranks=ranks,
            message=f"Too few settings for a Friedman test: {finished}; it needs "
                    f"{MIN_SETTINGS} (Demšar 2006). Mean ranks are descriptive only.", **base)
    values = matrix.to_numpy(dtype=float)
    result = stats.friedmanchisquare(*values.T)
    posthoc = sp.posthoc_nemenyi_friedman(values)
    posthoc.index = posthoc.columns = algorithms
    cd = critical_difference(k, n, alpha)
    verdict = ("the algorithms' mean ranks differ" if result.pvalue < alpha
               else "no difference in mean rank can be shown")
    return FriedmanResult(
        status="tested", mean_ranks=ranks, statistic=float(result.statistic),
        p_value=float(result.pvalue), posthoc=posthoc, critical_difference=cd,
        message=f"Friedman chi² = {result.statistic:.2f} over {finished}, {k} algorithms: "
                f"p = {result.pvalue:.3g}, {verdict} at α = {alpha}. Nemenyi critical "
                f"difference {cd:.2f} ranks.", **base)


def friedman_groups(cells: pd.DataFrame, domains: Mapping[str, str], which: str = "best",
                    alpha: float = ALPHA) -> list[FriedmanResult]:
    """:func:`friedman` for every domain, and over all settings when there are several."""
    return [friedman(cells, g, group_tasks(g, domains), which, alpha)
            for g in statistics_groups(domains.values())]


def statistics_frames(results: Sequence[FriedmanResult]) -> dict[str, pd.DataFrame]:
    """``statistics.csv``, ``statistics_ranks.csv`` and ``statistics_posthoc.csv``."""
    rows, ranks, pairs = [], [], []
    for r in results:
        rows.append({
            "group": r.group, "status": r.status, "n_settings": len(r.settings),
            "n_settings_expected": r.n_settings_expected, "n_algorithms": len(r.algorithms),
            "algorithms": " ".join(r.algorithms), "excluded": " ".join(r.excluded),
            "friedman_chi2": r.statistic, "p_value": r.p_value,
            "critical_difference": r.critical_difference, "alpha": r.alpha,
            "message": r.message,
        })
        ranks += [{"group": r.group, "algorithm": a, "mean_rank": float(v),
                   "n_settings": len(r.settings)} for a, v in r.mean_ranks.items()]
        if r.posthoc is not None:
            for i, a in enumerate(r.algorithms):
                for b in r.algorithms[i + 1:]:
                    p = float(r.posthoc.at[a, b])
                    pairs.append({"group": r.group, "algorithm": a, "other": b, "p_value": p,
                                  "significant": bool(p < r.alpha)})
    return {
        "statistics.csv": pd.DataFrame(rows, columns=list(STATISTICS_COLUMNS)),
        "statistics_ranks.csv": pd.DataFrame(ranks, columns=list(RANK_COLUMNS)),
        "statistics_posthoc.csv": pd.DataFrame(pairs, columns=list(POSTHOC_COLUMNS)),
    }
