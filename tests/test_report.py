"""Tests for semibench.report: aggregation, Markdown tables, paired tests, figures, HTML.

The fake results use hand-picked numbers so that every expected mean/std below can be checked
by hand, and known orderings (e.g. 40 < 200 labels, which sorts the other way as text).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from semibench.report.aggregate import (
    MetricsFormatError,
    collect_runs,
    compare_to_baseline,
    order_algorithms,
    summarize,
    write_tables,
)
from semibench.report.figures import write_figures
from semibench.report.html import write_html

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DOMAINS = {"mnist": "image", "agnews": "text", "text_task": "text", "img": "image"}
SEEDS = {"mnist": [0, 1, 2], "agnews": [0, 1]}
#: best-on-validation test error per seed (in seed order); last = best + 1.0 everywhere
BEST: dict[tuple[str, int, str], list[float]] = {
    ("mnist", 40, "supervised"): [30.0, 32.0, 34.0],
    ("mnist", 40, "fixmatch"): [5.0, 6.0, 10.0],
    ("mnist", 40, "meanteacher"): [20.0, 24.0, 22.0],
    ("mnist", 40, "fullysupervised"): [1.0, 1.5, 2.0],
    ("mnist", 250, "supervised"): [12.0, 13.0, 11.0],
    ("mnist", 250, "fixmatch"): [4.0, 4.5, 3.5],
    ("mnist", 250, "meanteacher"): [3.0, 3.25, 3.5],
    ("mnist", 250, "fullysupervised"): [1.0, 1.0, 1.0],
    ("agnews", 40, "supervised"): [50.0, 54.0],
    ("agnews", 40, "fixmatch"): [20.0, 30.0],
    ("agnews", 40, "meanteacher"): [40.0, 41.0],
    ("agnews", 40, "fullysupervised"): [8.0, 9.0],
    ("agnews", 200, "supervised"): [30.0, 31.0],
    ("agnews", 200, "fixmatch"): [15.0, 17.0],
    ("agnews", 200, "meanteacher"): [25.0],  # a single seed: std and p-value are NaN
    ("agnews", 200, "fullysupervised"): [8.0, 10.0],
}
N_RUNS = sum(len(v) for v in BEST.values())
CURVE_HEADER = (
    "iteration,lr,loss,sup_loss,unsup_loss,mask_ratio,pseudo_label_acc,val_error,test_error,"
    "elapsed_s"
)


def _write_run(root: Path, task: str, num_labels: int, algorithm: str, seed: int, best: float):
    run_dir = root / "runs" / task / str(num_labels) / algorithm / f"seed{seed}"
    run_dir.mkdir(parents=True)
    metrics = {
        "task": task,
        "domain": DOMAINS[task],
        "num_labels": num_labels,
        "algorithm": algorithm,
        "seed": seed,
        "num_classes": 2,
        "classes": ["a", "b"],
        "best": {
            "iteration": 200,
            "val_error": best - 0.5,
            "test_error": best,
            "test_per_class_accuracy": [100 - best, 100 - best],
        },
        "last": {
            "iteration": 300,
            "val_error": best + 0.5,
            "test_error": best + 1.0,
            "test_per_class_accuracy": [99 - best, 99 - best],
        },
        "wall_time_s": 10.0 + seed,
        "device": "cpu",
        "versions": {"torch": "2.11.0"},
        "config": {},
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    supervised = algorithm in ("supervised", "fullysupervised")
    rows = [CURVE_HEADER, f"50,0.03,2.0,2.0,{'' if supervised else '0.1'},,,,,1.0"]
    for it, val in ((100, best + 10.0), (200, best - 0.5), (300, best + 0.5)):
        extra = ",,," if supervised else "0.1,0.8,0.9,"
        rows.append(f"{it},0.03,1.0,1.0,{extra}{val},{best},{it / 10}")
    (run_dir / "curve.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return run_dir / "metrics.json", run_dir / "curve.csv"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("results")
    metrics: list[Path] = []
    curves: dict[tuple, Path] = {}
    # written in reverse so that the sort order cannot come from the input order
    for (task, num_labels, algorithm), values in reversed(BEST.items()):
        for seed, best in zip(SEEDS[task], values, strict=False):
            m, c = _write_run(root, task, num_labels, algorithm, seed, best)
            metrics.append(m)
            curves[(task, num_labels, algorithm, seed)] = c
    runs = collect_runs(metrics)
    tables = write_tables(runs, root / "tables")
    figures = write_figures(runs, curves, root / "figures")
    return {"root": root, "runs": runs, "curves": curves, "tables": tables, "figures": figures}


def _row(frame: pd.DataFrame, task: str, num_labels: int, algorithm: str) -> pd.Series:
    sel = frame.loc[
        (frame["task"] == task)
        & (frame["num_labels"] == num_labels)
        & (frame["algorithm"] == algorithm)
    ]
    assert len(sel) == 1
    return sel.iloc[0]


def test_collect_runs(results: dict) -> None:
    runs = results["runs"]
    assert len(runs) == N_RUNS == 39
    assert list(runs.columns[:5]) == ["task", "domain", "num_labels", "algorithm", "seed"]
    row = runs.loc[(runs["task"] == "mnist") & (runs["algorithm"] == "fixmatch")].iloc[2]
    assert (row["num_labels"], row["seed"], row["best_test_error"]) == (40, 2, 10.0)
    assert row["last_test_error"] == 11.0
    assert row["best_val_error"] == 9.5
    assert row["best_iteration"] == 200
    assert row["wall_time_s"] == 12.0
    assert row["device"] == "cpu"
    assert row["metrics_path"].endswith("mnist/40/fixmatch/seed2/metrics.json")


def test_summarize_means_stds_and_order(results: dict) -> None:
    summary = summarize(results["runs"])
    assert len(summary) == len(BEST)
    # by hand: mean(5, 6, 10) = 7, sample var = (4 + 1 + 9) / 2 = 7
    fix = _row(summary, "mnist", 40, "fixmatch")
    assert fix["n_seeds"] == 3
    assert fix["best_test_error_mean"] == pytest.approx(7.0)
    assert fix["best_test_error_std"] == pytest.approx(math.sqrt(7.0))
    assert fix["last_test_error_mean"] == pytest.approx(8.0)
    assert fix["last_test_error_std"] == pytest.approx(math.sqrt(7.0))
    assert fix["wall_time_s_mean"] == pytest.approx(11.0)
    # mean(3, 3.25, 3.5) = 3.25, sample var = (0.0625 + 0 + 0.0625) / 2
    mt = _row(summary, "mnist", 250, "meanteacher")
    assert mt["best_test_error_mean"] == pytest.approx(3.25)
    assert mt["best_test_error_std"] == pytest.approx(0.25)
    # mean(20, 30) = 25, sample var = (25 + 25) / 1 = 50
    ag = _row(summary, "agnews", 40, "fixmatch")
    assert ag["best_test_error_std"] == pytest.approx(math.sqrt(50.0))
    single = _row(summary, "agnews", 200, "meanteacher")
    assert single["n_seeds"] == 1
    assert single["best_test_error_mean"] == 25.0
    assert math.isnan(single["best_test_error_std"])

    order = ["supervised", "fixmatch", "meanteacher", "fullysupervised"]
    expected = [
        (task, nl, alg)
        for task, budgets in (("agnews", [40, 200]), ("mnist", [40, 250]))
        for nl in budgets
        for alg in order
    ]
    assert list(summary[["task", "num_labels", "algorithm"]].itertuples(index=False)) == [
        tuple(e) for e in expected
    ]
    assert order_algorithms(["zeta", "fullysupervised", "alpha", "supervised", "alpha"]) == [
        "supervised",
        "alpha",
        "zeta",
        "fullysupervised",
    ]


def test_tables_and_markdown(results: dict) -> None:
    tables = results["tables"]
    assert set(tables) == {"runs.csv", "summary.csv", "usb_published.csv", "summary.md"}
    assert pd.read_csv(tables["usb_published.csv"]).empty  # no USB table named
    assert len(pd.read_csv(tables["runs.csv"])) == N_RUNS
    assert pd.read_csv(tables["summary.csv"]).loc[0, "algorithm"] == "supervised"
    md = tables["summary.md"].read_text(encoding="utf-8")
    assert "| algorithm | 40 labels | 250 labels |" in md
    assert "| algorithm | 40 labels | 200 labels |" in md
    # best: the lowest mean per column is bold, fullysupervised (an upper bound) never is
    assert "**7.00 ± 2.65**" in md
    assert "**3.25 ± 0.25**" in md
    assert "**16.00 ± 1.41**" in md
    assert "| fullysupervised | 1.50 ± 0.50 | 1.00 ± 0.00 |" in md
    assert "**1.50" not in md and "**1.00" not in md
    assert "| 4.00 ± 0.50 |" in md  # mnist/250/fixmatch, not bold
    assert "25.00 ± n/a" in md  # single seed
    # last = best + 1
    assert "**8.00 ± 2.65**" in md and "**4.25 ± 0.25**" in md
    assert md.index("## Test error (%) at the checkpoint with the lowest") < md.index(
        "## Test error (%) at the last evaluation"
    )
    assert "## Paired comparison with supervised" in md
    assert "| mnist | 40 | fixmatch | 3 | -25.00 |" in md
    assert "| agnews | 200 | meanteacher | 1 | -5.00 | n/a |" in md


def test_compare_to_baseline_matches_scipy(results: dict) -> None:
    cmp = compare_to_baseline(results["runs"])
    assert "supervised" not in set(cmp["algorithm"])
    assert len(cmp) == len(BEST) - 4
    for (task, nl, alg), values in BEST.items():
        if alg == "supervised":
            continue
        row = _row(cmp, task, nl, alg)
        base = BEST[(task, nl, "supervised")][: len(values)]
        assert row["n_shared_seeds"] == len(values)
        diffs = [a - b for a, b in zip(values, base, strict=True)]
        assert row["mean_difference"] == pytest.approx(sum(diffs) / len(diffs))
        if len(values) < 2:
            assert math.isnan(row["p_value"])
        else:
            expected = stats.ttest_rel(values, base).pvalue
            assert row["p_value"] == pytest.approx(expected, nan_ok=True)
    fix = _row(cmp, "mnist", 40, "fixmatch")
    assert fix["p_value"] == pytest.approx(stats.ttest_rel([5, 6, 10], [30, 32, 34]).pvalue)
    assert fix["mean_difference"] == pytest.approx(-25.0)


def test_figures_are_deterministic_pngs(results: dict, tmp_path: Path) -> None:
    figures = results["figures"]
    assert [p.name for p in figures] == [
        "agnews.png",
        "agnews_curves.png",
        "mnist.png",
        "mnist_curves.png",
    ]
    for path in figures:
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert len(data) > 10_000
    again = write_figures(results["runs"], results["curves"], tmp_path)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in figures]


def test_html_is_self_contained(results: dict) -> None:
    root = results["root"]
    out = write_html(
        results["runs"],
        results["tables"]["summary.md"],
        results["figures"],
        root / "report.html",
        title="SemiBench <test> & co",
        config={"note": "<script>alert(1)</script>"},
    )
    page = out.read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') == len(results["figures"]) == 4
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page
    assert "SemiBench &lt;test&gt; &amp; co" in page and "<test>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert f"{N_RUNS} runs over 2 tasks" in page
    assert "<strong>7.00 ± 2.65</strong>" in page
    assert "<strong>1.50" not in page
    # one per-run row: mnist, 40 labels, fixmatch, seed 2, best 10, last 11, 12 s, cpu
    cells = ["mnist", "40", "fixmatch", "2", "10.00", "11.00", "12.00", "cpu"]
    assert re.search(r"<tr>\s*" + r"\s*".join(f"<td>{c}</td>" for c in cells), page)
    # paired comparison row
    p = stats.ttest_rel([5, 6, 10], [30, 32, 34]).pvalue
    assert f"<td>{p:.4f}</td>" in page


def test_malformed_metrics_name_the_file(tmp_path: Path) -> None:
    bad_json = tmp_path / "a" / "metrics.json"
    bad_json.parent.mkdir()
    bad_json.write_text("{not json", encoding="utf-8")
    with pytest.raises(MetricsFormatError, match=re.escape(str(bad_json))):
        collect_runs([bad_json])

    good, _ = _write_run(tmp_path, "mnist", 40, "fixmatch", 0, 5.0)
    missing = tmp_path / "b" / "metrics.json"
    missing.parent.mkdir()
    data = json.loads(good.read_text(encoding="utf-8"))
    del data["best"]["test_error"]
    missing.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(MetricsFormatError, match=re.escape(str(missing))) as err:
        collect_runs([good, missing])
    assert "best.test_error" in str(err.value)

    with pytest.raises(MetricsFormatError, match="duplicate"):
        collect_runs([good, good])


def test_token_edit_stand_in_is_reported(tmp_path: Path) -> None:
    paths = []
    for seed, view in ((0, "token-edit stand-in"), (1, "token-edit stand-in")):
        metrics_path, _ = _write_run(tmp_path, "text_task", 40, "fixmatch", seed, 30.0)
        data = json.loads(metrics_path.read_text())
        data.update(domain="text", text_strong_view=view)
        metrics_path.write_text(json.dumps(data))
        paths.append(metrics_path)
    runs = collect_runs(paths)
    assert set(runs["text_strong_view"]) == {"token-edit stand-in"}
    out = write_tables(runs, tmp_path / "tables")
    text = out["summary.md"].read_text()
    assert "Strong text view of text_task: the token-edit stand-in" in text
    # a run without the field (image, audio) reads as empty and adds no note
    image = collect_runs([_write_run(tmp_path, "img", 40, "fixmatch", 0, 10.0)[0]])
    assert image["text_strong_view"].tolist() == [""]
    assert "stand-in" not in write_tables(image, tmp_path / "t2")["summary.md"].read_text()
