"""Paper tables, ranks, Friedman/Nemenyi statistics and cost on small hand-built result sets.

Every expected number is worked out by hand in the comments (ranks, rank sums, the Friedman
statistic and its p-value, Nemenyi's critical difference from Demšar's table), so the tests
check the library calls against the definitions, not against themselves.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from semibench.report import layout, paper
from semibench.report.aggregate import cells, grid_frame
from semibench.report.cost import cost_frame, cost_table, device_statement
from semibench.report.figures import pareto_front
from semibench.report.stats import critical_difference, friedman, statistics_frames


def runs_frame(values: dict[tuple[str, int, str], list[float]], domain: str = "image",
               **extra) -> pd.DataFrame:
    """One run per (task, num_labels, algorithm, seed): best = the value, last = value + 1."""
    rows = []
    for (task, n, alg), errors in values.items():
        for seed, error in enumerate(errors):
            rows.append({"task": task, "domain": domain, "num_labels": n, "algorithm": alg,
                         "seed": seed, "best_test_error": error, "last_test_error": error + 1,
                         "best_val_error": error, "best_iteration": 1, "wall_time_s": 60.0,
                         "device": "cpu", "threads": 1, "precision": "fp32",
                         "text_strong_view": "", "job_wall_s": 90.0, "job_cpu_s": 80.0,
                         "job_max_rss_mb": 1024.0, "metrics_path": "x", **extra})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- Friedman

#: 3 algorithms on 6 settings, no ties; within-setting ranks in the comment
FRIEDMAN = {
    ("t1", 10): {"fixmatch": 10, "flexmatch": 20, "supervised": 30},  # 1 2 3
    ("t1", 20): {"fixmatch": 12, "flexmatch": 25, "supervised": 22},  # 1 3 2
    ("t2", 10): {"fixmatch": 15, "flexmatch": 14, "supervised": 40},  # 2 1 3
    ("t2", 20): {"fixmatch": 5, "flexmatch": 9, "supervised": 7},     # 1 3 2
    ("t3", 10): {"fixmatch": 8, "flexmatch": 18, "supervised": 28},   # 1 2 3
    ("t3", 20): {"fixmatch": 30, "flexmatch": 20, "supervised": 50},  # 2 1 3
}


def friedman_cells(table: dict, upper_bound: bool = True) -> pd.DataFrame:
    values = {(t, n, a): [v] for (t, n), row in table.items() for a, v in row.items()}
    if upper_bound:  # fully supervised is never ranked: it would win everywhere
        values |= {(t, n, "fullysupervised"): [0.5] for (t, n) in table}
    return cells(runs_frame(values))


def test_friedman_statistic_and_p_value_by_hand() -> None:
    result = friedman(friedman_cells(FRIEDMAN), "image", ["t1", "t2", "t3"])
    assert result.status == "tested" and result.tested
    assert result.algorithms == ["fixmatch", "flexmatch", "supervised"]
    assert len(result.settings) == 6 and result.excluded == []
    # rank sums R = 8, 12, 16 over N = 6 settings: mean ranks 4/3, 2, 8/3
    assert result.mean_ranks.to_dict() == pytest.approx(
        {"fixmatch": 8 / 6, "flexmatch": 12 / 6, "supervised": 16 / 6})
    # chi2 = 12 / (N k (k+1)) * sum R^2 - 3 N (k+1) = 12/72 * (64 + 144 + 256) - 72 = 16/3
    assert result.statistic == pytest.approx(16 / 3)
    # chi-square with k-1 = 2 degrees of freedom: p = exp(-chi2 / 2)
    assert result.p_value == pytest.approx(math.exp(-8 / 3))
    assert "p = 0.0695" in result.message and "no difference in mean rank" in result.message


def test_nemenyi_and_critical_difference_by_hand() -> None:
    result = friedman(friedman_cells(FRIEDMAN), "image", ["t1", "t2", "t3"])
    # Demšar (2006), table 5: q_0.05 = 2.343 for k = 3; CD = q sqrt(k(k+1) / 6N) = 2.343 / sqrt 3
    assert result.critical_difference == pytest.approx(2.343 * math.sqrt(12 / 36), abs=1e-3)
    assert critical_difference(4, 10) == pytest.approx(2.569 * math.sqrt(20 / 60), abs=1e-3)
    # fixmatch vs supervised: mean ranks differ by 4/3 < CD = 1.353: not significant, and
    # the Nemenyi p-value is the studentized range tail at q = (4/3) / sqrt(k(k+1)/6N) * sqrt 2
    q = (4 / 3) / math.sqrt(12 / 36)
    expected = stats.studentized_range.sf(q * math.sqrt(2), 3, math.inf)
    assert result.posthoc.at["fixmatch", "supervised"] == pytest.approx(expected, rel=1e-6)
    assert 0.05 < result.posthoc.at["fixmatch", "supervised"] < 0.06
    frames = statistics_frames([result])
    pairs = frames["statistics_posthoc.csv"]
    assert len(pairs) == 3 and not pairs["significant"].any()
    row = frames["statistics.csv"].iloc[0]
    assert (row["group"], row["status"], row["n_settings"], row["n_algorithms"]) == (
        "image", "tested", 6, 3)
    assert row["friedman_chi2"] == pytest.approx(16 / 3)


def test_friedman_with_ties_uses_the_tie_correction() -> None:
    table = {
        ("t1", 10): {"fixmatch": 1, "flexmatch": 2, "supervised": 3},  # 1   2   3
        ("t1", 20): {"fixmatch": 4, "flexmatch": 4, "supervised": 9},  # 1.5 1.5 3
        ("t2", 10): {"fixmatch": 1, "flexmatch": 2, "supervised": 3},  # 1   2   3
        ("t2", 20): {"fixmatch": 2, "flexmatch": 1, "supervised": 3},  # 2   1   3
        ("t3", 10): {"fixmatch": 1, "flexmatch": 3, "supervised": 2},  # 1   3   2
    }
    result = friedman(friedman_cells(table), "image", ["t1", "t2", "t3"])
    # R = 6.5, 9.5, 14; uncorrected chi2 = 12/60 * (42.25 + 90.25 + 196) - 60 = 5.7;
    # one tie of t = 2: correction 1 - (2^3 - 2) / (N k (k^2 - 1)) = 1 - 6/120 = 0.95
    assert result.mean_ranks.to_dict() == pytest.approx(
        {"fixmatch": 6.5 / 5, "flexmatch": 9.5 / 5, "supervised": 14 / 5})
    assert result.statistic == pytest.approx(5.7 / 0.95)
    assert result.p_value == pytest.approx(math.exp(-3.0))


def test_too_few_settings_or_algorithms_give_no_p_value() -> None:
    four = {k: v for k, v in list(FRIEDMAN.items())[:4]}
    result = friedman(friedman_cells(four), "image", ["t1", "t2"])
    assert result.status == "too few settings" and math.isnan(result.p_value)
    assert result.posthoc is None
    assert "Too few settings for a Friedman test: 4 settings; it needs 5" in result.message
    assert len(result.mean_ranks) == 3  # descriptive ranks are still given
    two = {k: {a: v for a, v in row.items() if a != "flexmatch"} for k, row in FRIEDMAN.items()}
    result = friedman(friedman_cells(two), "image", ["t1", "t2", "t3"])
    assert result.status == "too few algorithms" and math.isnan(result.p_value)
    assert "2 compared on every setting (fixmatch, supervised); it needs 3" in result.message
    frame = statistics_frames([result])["statistics.csv"]
    assert frame["p_value"].isna().all() and frame["status"].tolist() == ["too few algorithms"]


def test_incomplete_blocks_are_named_not_hidden() -> None:
    # remixmatch is configured on one setting only: left out of the test, and said so
    table = {k: dict(v) for k, v in FRIEDMAN.items()}
    table[("t1", 10)]["remixmatch"] = 1.0
    full = friedman_cells(table)
    result = friedman(full, "image", ["t1", "t2", "t3"])
    assert result.excluded == ["remixmatch"] and result.tested
    assert result.statistic == pytest.approx(16 / 3)
    # a partial sweep: flexmatch has not finished t3/20 yet, so that setting waits
    grid = grid_frame([(t, n, a, 0) for (t, n), row in FRIEDMAN.items() for a in row],
                      {"t1": "image", "t2": "image", "t3": "image"})
    values = {(t, n, a): [v] for (t, n), row in FRIEDMAN.items() for a, v in row.items()
              if (t, n, a) != ("t3", 20, "flexmatch")}
    result = friedman(cells(runs_frame(values), grid), "image", ["t1", "t2", "t3"])
    assert result.tested and len(result.settings) == 5 and result.n_settings_expected == 6
    assert "5 of 6 settings have every compared algorithm finished" in result.message


def test_testable_groups_come_from_the_grid() -> None:
    domains = {"a": "image", "b": "image", "c": "text"}
    algs = ["supervised", "fixmatch", "flexmatch", "fullysupervised"]
    grid = [(t, n, a, 0) for t in ("a", "b") for n in (10, 20, 30) for a in algs]
    grid += [("c", 10, a, 0) for a in algs]
    # image: 6 settings x 3 compared algorithms; text: 1 setting; all: 7 settings
    assert layout.testable_groups(grid, domains) == ["image", "all"]
    without = [g for g in grid if g[2] != "flexmatch"]  # 2 compared algorithms
    assert layout.testable_groups(without, domains) == []
    assert layout.statistics_groups(["text"]) == ["text"]


# --------------------------------------------------------------------------- paper table

PAPER_RUNS = {
    ("semi_aves", 10, "supervised"): [30.0, 34.0],
    ("semi_aves", 20, "supervised"): [20.0, 22.0],
    ("semi_aves", 10, "fixmatch"): [10.0, 12.0],
    ("semi_aves", 20, "fixmatch"): [8.0],  # 1 of 2 seeds finished
    ("semi_aves", 10, "flexmatch"): [11.0, 11.0],  # ties with fixmatch at 11.00
    # flexmatch on 20 labels: configured, nothing finished
    ("semi_aves", 10, "meanteacher"): [40.0, 40.0],  # not configured on 20 labels
    ("semi_aves", 10, "fullysupervised"): [5.0, 5.0],
    ("semi_aves", 20, "fullysupervised"): [4.0, 4.0],
}


@pytest.fixture
def table() -> paper.PaperTable:
    keys = [k for k in PAPER_RUNS if k[2] != "meanteacher"] + [("semi_aves", 20, "flexmatch")]
    grid = [(t, n, a, s) for t, n, a in keys for s in (0, 1)]
    grid += [("semi_aves", 10, "meanteacher", s) for s in (0, 1)]
    expected = grid_frame(grid, {"semi_aves": "image"})
    return paper.paper_table(cells(runs_frame(PAPER_RUNS), expected), ["semi_aves"], "image")


def test_paper_table_ranks_means_and_marks(table: paper.PaperTable) -> None:
    s10, s20 = ("semi_aves", 10), ("semi_aves", 20)
    assert table.settings == [s10, s20]
    assert table.algorithms == ["supervised", "fixmatch", "flexmatch", "meanteacher",
                                "fullysupervised"]
    # 10 labels: fixmatch 11 = flexmatch 11 < supervised 32 < meanteacher 40 -> 1.5 1.5 3 4
    assert table.ranks[s10].to_dict() == pytest.approx(
        {"supervised": 3, "fixmatch": 1.5, "flexmatch": 1.5, "meanteacher": 4,
         "fullysupervised": math.nan}, nan_ok=True)
    # 20 labels: fixmatch 8 < supervised 21; flexmatch missing, meanteacher not run
    assert table.ranks.at["fixmatch", s20] == 1 and table.ranks.at["supervised", s20] == 2
    assert math.isnan(table.ranks.at["flexmatch", s20])
    assert table.mean_rank.to_dict() == pytest.approx(
        {"supervised": 2.5, "fixmatch": 1.25, "flexmatch": 1.5, "meanteacher": 4.0,
         "fullysupervised": math.nan}, nan_ok=True)
    assert table.mean_error.to_dict() == pytest.approx(
        {"supervised": 26.5, "fixmatch": 9.5, "flexmatch": 11.0, "meanteacher": 40.0,
         "fullysupervised": 4.5})
    # ties share bold; the next value is underlined; fully supervised is never marked
    assert table.marks[s10].to_dict() == {"supervised": "second", "fixmatch": "best",
                                          "flexmatch": "best", "meanteacher": "",
                                          "fullysupervised": ""}
    assert table.marks[s20].to_dict() == {"supervised": "second", "fixmatch": "best",
                                          "flexmatch": "", "meanteacher": "",
                                          "fullysupervised": ""}
    assert table.cell_text("supervised", s10) == "32.00 ± 2.83"  # sqrt(8)
    assert table.cell_text("fixmatch", s20) == "8.00 (1/2 seeds)"
    assert table.cell_text("flexmatch", s20) == paper.MISSING
    assert table.cell_text("meanteacher", s20) == paper.NOT_RUN
    assert table.summary_text("flexmatch", "mean_rank") == "1.50 (1/2)"
    assert table.summary_text("fixmatch", "mean_rank") == "1.25"


def test_paper_table_markdown_latex_and_csv(table: paper.PaperTable) -> None:
    md = paper.to_markdown(table)
    assert md.splitlines()[0] == ("| algorithm | semi_aves 10 | semi_aves 20 | mean error "
                                  "| mean rank |")
    assert "| *supervised* | <u>32.00 ± 2.83</u> | <u>21.00 ± 1.41</u> | 26.50 | 2.50 |" in md
    assert "| fixmatch | **11.00 ± 1.41** | **8.00 (1/2 seeds)** | 9.50 | 1.25 |" in md
    assert "| flexmatch | **11.00 ± 0.00** | missing | 11.00 (1/2) | 1.50 (1/2) |" in md
    assert "| *fullysupervised* | 5.00 ± 0.00 | 4.00 ± 0.00 | 4.50 | – |" in md

    tex = paper.to_latex(table)
    lines = tex.splitlines()
    assert lines[0] == ("% requires \\usepackage{booktabs} and \\usepackage{graphicx} "
                        "(for \\resizebox)")
    for command in ("\\toprule", "\\bottomrule", "\\cmidrule(lr){2-3}",
                    "\\multicolumn{2}{c}{semi\\_aves}", "\\label{tab:semibench-image}"):
        assert command in tex, command
    assert tex.count("\\midrule") == 3  # under the header, around the SSL block
    assert ("fixmatch & \\textbf{11.00}$\\pm$1.41 & \\textbf{8.00}$^{1/2}$ & 9.50 & 1.25 \\\\"
            in lines)
    assert "flexmatch & \\textbf{11.00}$\\pm$0.00 & \\textit{missing} & 11.00 (1/2)" in tex
    assert "meanteacher & 40.00$\\pm$0.00 & -- & 40.00 (1/2) & 4.00 (1/2) \\\\" in lines
    assert "\\underline{32.00}$\\pm$2.83" in tex
    assert "±" not in tex and "–" not in tex  # plain LaTeX, no Unicode

    frame = paper.to_frame(table)
    assert list(frame["algorithm"]) == table.algorithms
    assert list(frame["role"]) == ["lower bound", "ssl", "ssl", "ssl", "upper bound"]
    row = frame.set_index("algorithm").loc["fixmatch"]
    assert (row["semi_aves_20_mean"], row["semi_aves_20_seeds"],
            row["semi_aves_20_expected_seeds"]) == (8.0, 1, 2)
    assert math.isnan(row["semi_aves_20_std"]) and row["semi_aves_10_rank"] == 1.5
    assert row["mean_rank"] == 1.25 and row["mean_rank_columns"] == 2


def test_latex_escapes_names() -> None:
    assert paper.latex_escape("a_b & 50% #1 $x$ {y} ~^\\") == (
        "a\\_b \\& 50\\% \\#1 \\$x\\$ \\{y\\} \\textasciitilde{}\\textasciicircum{}"
        "\\textbackslash{}")


# --------------------------------------------------------------------------- cost


def test_cost_tables_sum_the_runs() -> None:
    runs = runs_frame({("a", 10, "fixmatch"): [1, 2], ("a", 10, "supervised"): [3],
                       ("b", 10, "fixmatch"): [4]})
    runs.loc[runs["task"] == "b", ["wall_time_s", "job_max_rss_mb"]] = [7200.0, 2048.0]
    by_alg = cost_table(runs, ["algorithm"]).set_index("algorithm")
    assert list(by_alg.index) == ["supervised", "fixmatch"]
    fix = by_alg.loc["fixmatch"]
    # fixmatch: 60 + 60 + 7200 s = 2.0333 h; jobs 3 x 90 s; peak 2 GB
    assert fix["runs"] == 3 and fix["device_h"] == pytest.approx(7320 / 3600)
    assert fix["mean_run_min"] == pytest.approx(7320 / 3 / 60)
    assert fix["job_h"] == pytest.approx(270 / 3600) and fix["peak_rss_gb"] == 2.0
    total = cost_frame(runs).set_index(["task", "algorithm"]).loc[("all", "all")]
    assert total["runs"] == 4 and total["device_h"] == pytest.approx(7380 / 3600)
    # (a, supervised), (a, fixmatch) and the task total (a, all)
    assert (cost_frame(runs)["task"] == "a").sum() == 3


def test_device_and_precision_are_stated() -> None:
    runs = pd.concat([
        runs_frame({("a", 10, "fixmatch"): [1, 2]}),
        runs_frame({("a", 10, "supervised"): [3]}, device="NVIDIA H200",
                   precision="bf16 autocast"),
    ], ignore_index=True)
    text = device_statement(runs)
    assert "1 run on NVIDIA H200 (bf16 autocast): 0.017 device-hours" in text
    assert "2 runs on cpu (fp32, 1 thread per run): 0.033 device-hours" in text
    assert text.endswith("Total: 0.050 device-hours of training.")


def test_pareto_front() -> None:
    points = pd.DataFrame({"minutes": [1, 2, 3, 4, 2.5], "error": [30, 20, 25, 10, 20]})
    # (3, 25) is beaten by (2, 20); (2.5, 20) ties on error but costs more than (2, 20)
    assert pareto_front(points, "minutes", "error").index.tolist() == [0, 1, 3]


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex (Debian: "
                    "texlive-latex-recommended) to compile the LaTeX tables")
def test_latex_table_compiles(table: paper.PaperTable, tmp_path: Path) -> None:
    (tmp_path / "table.tex").write_text(paper.to_latex(table), encoding="utf-8")
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
        "\\begin{document}\n\\input{table.tex}\n\\end{document}\n", encoding="utf-8")
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000
