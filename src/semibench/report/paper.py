"""USB's result tables, per domain: rows = algorithms, columns = task x label budget.

A cell is the mean ± sample std of the test error over seeds. Per column the lowest mean is
bold and the second lowest underlined (ties share the mark). Each row ends with its mean error
and mean rank over the columns, as USB reports them. Ranks are taken within a column among the
compared algorithms: every algorithm but the upper bound (``fullysupervised`` trains on every
label), so the supervised baseline is ranked too. The supervised and fully supervised rows are
set apart by rules, before and after the SSL algorithms.

Cells are never dropped: a configured cell without a finished run reads "missing", one with
fewer seeds than configured says how many ("2/3 seeds"), and an algorithm that the config does
not run on a task shows a dash. Rendered as CSV (numbers only), Markdown, LaTeX (booktabs) and
HTML (through the report's template).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from semibench.report.formatting import CHECKPOINTS
from semibench.report.frames import order_algorithms
from semibench.report.layout import DOMAIN_TITLES, LOWER_BOUND, UPPER_BOUND, group_tasks

NOT_RUN = "–"
MISSING = "missing"
NOTES = (
    "Bold: lowest mean error per column; underlined: second lowest (fully supervised "
    "excluded: it sees every label). Mean error and mean rank over the columns the row has "
    "(with how many, when not all); ranks within a column among all algorithms but fully "
    "supervised, ties averaged. \u201cmissing\u201d: configured, no run finished yet; "
    "\u201ck/n seeds\u201d: k of n configured seeds finished; \u2013: not configured."
)


@dataclass(frozen=True)
class PaperTable:
    """One group's table, with the numbers every renderer needs (frames: algorithm x setting)."""

    group: str
    which: str
    settings: list[tuple[str, int]]
    algorithms: list[str]
    mean: pd.DataFrame
    std: pd.DataFrame
    n_seeds: pd.DataFrame
    expected: pd.DataFrame
    ranks: pd.DataFrame
    marks: pd.DataFrame  # "best", "second" or ""
    mean_error: pd.Series
    mean_rank: pd.Series
    n_columns: pd.Series  # columns with a value, per algorithm
    n_ranked: pd.Series  # columns with a rank, per algorithm

    @property
    def title(self) -> str:
        return f"{DOMAIN_TITLES.get(self.group, self.group)}: {CHECKPOINTS[self.which].lower()}"

    def role(self, algorithm: str) -> str:
        """"lower bound", "ssl" or "upper bound": the three blocks of rows."""
        return {LOWER_BOUND: "lower bound", UPPER_BOUND: "upper bound"}.get(algorithm, "ssl")

    def cell_text(self, algorithm: str, setting: tuple[str, int]) -> str:
        expected = int(self.expected.at[algorithm, setting])
        n = int(self.n_seeds.at[algorithm, setting])
        if n == 0:
            return MISSING if expected else NOT_RUN
        mean, std = self.mean.at[algorithm, setting], self.std.at[algorithm, setting]
        text = f"{mean:.2f} ± {std:.2f}" if np.isfinite(std) else f"{mean:.2f}"
        return text if n >= expected else f"{text} ({n}/{expected} seeds)"

    def summary_text(self, algorithm: str, column: str) -> str:
        """``mean_error`` or ``mean_rank`` of a row, with "(k/n)" when not every column."""
        value = (self.mean_error if column == "mean_error" else self.mean_rank)[algorithm]
        count = (self.n_columns if column == "mean_error" else self.n_ranked)[algorithm]
        if not np.isfinite(value):
            return NOT_RUN
        text = f"{value:.2f}"
        return text if count == len(self.settings) else f"{text} ({count}/{len(self.settings)})"


def _marks(mean: pd.DataFrame, compared: Sequence[str]) -> pd.DataFrame:
    """Best (lowest) and second-lowest mean per column, compared at the shown precision."""
    marks = pd.DataFrame("", index=mean.index, columns=mean.columns)
    for column in mean.columns:
        shown = mean.loc[list(compared), column].dropna().round(2)
        levels = sorted(shown.unique())
        for label, level in zip(("best", "second"), levels[:2], strict=False):
            marks.loc[shown.index[shown == level], column] = label
    return marks


def paper_table(cells: pd.DataFrame, tasks: Sequence[str], group: str,
                which: str = "best") -> PaperTable:
    """The table of ``tasks`` from :func:`aggregate.cells` (every expected cell)."""
    if which not in CHECKPOINTS:
        raise ValueError(f"which must be one of {sorted(CHECKPOINTS)}, got {which!r}")
    sub = cells.loc[cells["task"].isin(list(tasks))]
    settings = sorted({(str(t), int(n)) for t, n in
                       zip(sub["task"], sub["num_labels"], strict=True)})
    algorithms = order_algorithms(sub["algorithm"])
    columns = pd.MultiIndex.from_tuples(settings, names=["task", "num_labels"])

    def frame(column: str, fill: float) -> pd.DataFrame:
        if sub.empty:
            return pd.DataFrame(fill, index=algorithms, columns=columns)
        table = sub.pivot_table(index="algorithm", columns=["task", "num_labels"],
                                values=column, aggfunc="first", dropna=False)
        return table.reindex(index=algorithms, columns=columns).astype(float).fillna(fill)

    mean = frame(f"{which}_test_error_mean", math.nan)
    std = frame(f"{which}_test_error_std", math.nan)
    n_seeds = frame("n_seeds", 0).astype(int)
    expected = frame("expected_seeds", 0).astype(int)
    mean = mean.where(n_seeds > 0)
    compared = [a for a in algorithms if a != UPPER_BOUND]
    ranks = mean.loc[compared].rank(axis=0, method="average").reindex(algorithms)
    return PaperTable(
        group=group, which=which, settings=settings, algorithms=algorithms, mean=mean,
        std=std, n_seeds=n_seeds, expected=expected, ranks=ranks,
        marks=_marks(mean, compared), mean_error=mean.mean(axis=1),
        mean_rank=ranks.mean(axis=1), n_columns=mean.notna().sum(axis=1),
        n_ranked=ranks.notna().sum(axis=1),
    )


def paper_tables(cells: pd.DataFrame, domains: Mapping[str, str],
                 which: str = "best") -> list[PaperTable]:
    """One table per domain (sorted), from ``domains``: task -> domain."""
    return [paper_table(cells, group_tasks(d, domains), d, which)
            for d in sorted(set(domains.values()))]


def setting_label(setting: tuple[str, int]) -> str:
    return f"{setting[0]} {setting[1]}"


# --------------------------------------------------------------------------- renderers


def to_frame(table: PaperTable) -> pd.DataFrame:
    """The CSV: one row per algorithm, ``<task>_<labels>_{mean,std,seeds,expected_seeds,
    rank}`` per column, then mean error, mean rank and their column counts. Numbers only, at
    full precision."""
    out = pd.DataFrame({"algorithm": table.algorithms,
                        "role": [table.role(a) for a in table.algorithms]})
    for setting in table.settings:
        prefix = f"{setting[0]}_{setting[1]}"
        out[f"{prefix}_mean"] = table.mean[setting].to_numpy()
        out[f"{prefix}_std"] = table.std[setting].where(table.n_seeds[setting] > 1).to_numpy()
        out[f"{prefix}_seeds"] = table.n_seeds[setting].to_numpy()
        out[f"{prefix}_expected_seeds"] = table.expected[setting].to_numpy()
        out[f"{prefix}_rank"] = table.ranks[setting].to_numpy()
    out["mean_error"] = table.mean_error.to_numpy()
    out["mean_error_columns"] = table.n_columns.to_numpy()
    out["mean_rank"] = table.mean_rank.to_numpy()
    out["mean_rank_columns"] = table.n_ranked.to_numpy()
    return out


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(table: PaperTable) -> str:
    """GitHub Markdown: bold for the best, ``<u>`` for the second; the supervised and fully
    supervised rows (first and last) are in italics, set apart from the SSL algorithms."""
    header = ["algorithm", *(setting_label(s) for s in table.settings), "mean error",
              "mean rank"]
    lines = ["| " + " | ".join(header) + " |",
             "|:---|" + "---:|" * (len(header) - 1)]
    for alg in table.algorithms:
        row = [_md(alg) if table.role(alg) == "ssl" else f"*{_md(alg)}*"]
        for s in table.settings:
            text, mark = table.cell_text(alg, s), table.marks.at[alg, s]
            row.append(f"**{text}**" if mark == "best" else f"<u>{text}</u>" if mark == "second"
                       else text)
        row += [table.summary_text(alg, "mean_error"),
                table.summary_text(alg, "mean_rank") if alg != UPPER_BOUND else NOT_RUN]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                 "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                 "^": r"\textasciicircum{}"}


def latex_escape(text: object) -> str:
    return "".join(LATEX_SPECIAL.get(c, c) for c in str(text))


def _latex_cell(table: PaperTable, alg: str, setting: tuple[str, int]) -> str:
    expected = int(table.expected.at[alg, setting])
    n = int(table.n_seeds.at[alg, setting])
    if n == 0:
        return r"\textit{missing}" if expected else "--"
    mean, std = table.mean.at[alg, setting], table.std.at[alg, setting]
    value = f"{mean:.2f}"
    mark = table.marks.at[alg, setting]
    if mark == "best":
        value = rf"\textbf{{{value}}}"
    elif mark == "second":
        value = rf"\underline{{{value}}}"
    text = f"{value}$\\pm${std:.2f}" if np.isfinite(std) else value
    return text if n >= expected else f"{text}$^{{{n}/{expected}}}$"


def to_latex(table: PaperTable, label: str | None = None) -> str:
    """A ``table`` float with a booktabs ``tabular``: two header rows (task, then label
    budget, with ``\\cmidrule`` under each task), ``\\midrule`` between the three blocks."""
    tasks: list[tuple[str, int]] = []  # (task, number of budgets)
    for task, _n in table.settings:
        if tasks and tasks[-1][0] == task:
            tasks[-1] = (task, tasks[-1][1] + 1)
        else:
            tasks.append((task, 1))
    ncols = len(table.settings)
    lines = [
        "% requires \\usepackage{booktabs} and \\usepackage{graphicx} (for \\resizebox)",
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{latex_escape(table.title)}, mean$\\pm$std over seeds. Bold: best, "
        "underlined: second best per column (fully supervised excluded).}",
        f"\\label{{{label or 'tab:semibench-' + table.group}}}",
        # shrink to the text width when wider, never enlarge
        "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%",
        f"\\begin{{tabular}}{{l{'r' * ncols}rr}}",
        "\\toprule",
    ]
    head, rules, start = ["Task"], [], 2
    for task, span in tasks:
        head.append(f"\\multicolumn{{{span}}}{{c}}{{{latex_escape(task)}}}")
        rules.append(f"\\cmidrule(lr){{{start}-{start + span - 1}}}")
        start += span
    head += ["", ""]
    lines.append(" & ".join(head) + " \\\\")
    lines.append(" ".join(rules))
    lines.append(" & ".join(["Labels", *(str(n) for _t, n in table.settings),
                             "Mean error", "Mean rank"]) + " \\\\")
    lines.append("\\midrule")
    previous = None
    for alg in table.algorithms:
        role = table.role(alg)
        if previous is not None and role != previous:
            lines.append("\\midrule")
        previous = role
        row = [latex_escape(alg), *(_latex_cell(table, alg, s) for s in table.settings)]
        row += [latex_escape(table.summary_text(alg, "mean_error")).replace("–", "--"),
                latex_escape(table.summary_text(alg, "mean_rank")).replace("–", "--")
                if alg != UPPER_BOUND else "--"]
        lines.append(" & ".join(row) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}}", "\\end{table}"]
    return "\n".join(lines) + "\n"
