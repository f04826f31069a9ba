"""Tests for semibench.report: aggregation, Markdown tables, paired tests, figures, HTML.

(Statistics, paper tables and cost: test_report_stats.py; the CLI, partial reports and the
declared-inputs rule: test_report_cli.py; the page in a real browser: test_report_browser.py.)

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
from report_runs import table_rows
from scipy import stats

from semibench.report.aggregate import (
    MetricsFormatError,
    collect,
    collect_runs,
    compare_to_baseline,
    order_algorithms,
    summarize,
)
from semibench.report.figures import algorithm_colors, write_figures
from semibench.report.html import write_html
from semibench.report.tables import table_names, write_tables

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
        "val_size": 40,
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
    collected = collect(metrics, [curves[_key(m)] for m in metrics])
    runs = collected.runs
    tables = write_tables(runs, root / "tables", curves=collected.curves,
                          per_class=collected.per_class)
    figures = write_figures(runs, collected.curves, collected.per_class, root / "figures")
    return {"root": root, "runs": runs, "curves": curves, "collected": collected,
            "tables": tables, "figures": figures}


def _key(metrics_path: Path) -> tuple:
    data = json.loads(metrics_path.read_text(encoding="utf-8"))
    return (data["task"], data["num_labels"], data["algorithm"], data["seed"])


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
    assert row["val_size"] == 40
    assert row["wall_time_s"] == 12.0
    assert row["device"] == "cpu"
    assert row["precision"] == "fp32"
    assert row["metrics_path"].endswith("mnist/40/fixmatch/seed2/metrics.json")
    # no benchmark files given: job costs are unknown, not zero
    assert math.isnan(row["job_wall_s"]) and math.isnan(row["job_max_rss_mb"])


def test_collect_reads_curves_and_per_class(results: dict) -> None:
    curves = results["collected"].curves
    # 4 evaluations per run (the first row has no val_error and is dropped)
    assert len(curves) == 3 * N_RUNS
    one = curves.loc[(curves["task"] == "mnist") & (curves["algorithm"] == "fixmatch")
                     & (curves["num_labels"] == 40) & (curves["seed"] == 2)]
    assert one["iteration"].tolist() == [100, 200, 300]
    assert one["val_error"].tolist() == [20.0, 9.5, 10.5]
    assert one["mask_ratio"].tolist() == [0.8] * 3
    per_class = results["collected"].per_class
    assert len(per_class) == 2 * N_RUNS
    row = per_class.loc[(per_class["task"] == "mnist") & (per_class["algorithm"] == "fixmatch")
                        & (per_class["num_labels"] == 40) & (per_class["seed"] == 2)]
    assert row["class_name"].tolist() == ["a", "b"]
    assert row["best_accuracy"].tolist() == [90.0, 90.0]
    assert row["last_accuracy"].tolist() == [89.0, 89.0]


def test_a_curve_must_sit_next_to_its_metrics(results: dict) -> None:
    runs = sorted(results["curves"].items())
    metrics = [c.with_name("metrics.json") for _k, c in runs[:2]]
    with pytest.raises(ValueError, match="not next to its metrics"):
        collect(metrics, [runs[1][1], runs[0][1]])
    with pytest.raises(ValueError, match="one per run"):
        collect(metrics, [runs[0][1]])


def test_benchmark_files_give_job_cost(tmp_path: Path) -> None:
    metrics, _curve = _write_run(tmp_path, "mnist", 40, "fixmatch", 0, 5.0)
    tsv = tmp_path / "seed0.tsv"
    tsv.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load"
                   "\tcpu_time\n27.09\t0:00:27\t1059.03\t3583.75\t568.39\t679.70\t0.00\t0.77"
                   "\t34.39\t9.55\n", encoding="utf-8")
    row = collect_runs([metrics], [tsv]).iloc[0]
    assert (row["job_wall_s"], row["job_cpu_s"], row["job_max_rss_mb"]) == (27.09, 9.55, 1059.03)
    # a missing benchmark file (a run made outside Snakemake) is NaN, not an error
    row = collect_runs([metrics], [tmp_path / "absent.tsv"]).iloc[0]
    assert math.isnan(row["job_wall_s"])


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
    assert set(tables) == set(table_names(["image", "text"]))
    assert {"paper_image.tex", "paper_text.md", "statistics.csv", "cost.csv"} <= set(tables)
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
    assert "| mnist | 40 | fixmatch | supervised | 3 | -25.00 |" in md
    # one or two seeds: no test, whatever scipy would compute
    assert ("| agnews | 200 | meanteacher | supervised | 1 | -5.00 | too few seeds (1) | too few "
            "seeds (1) |" in md)
    assert ("| agnews | 40 | fixmatch | supervised | 2 | -27.00 | too few seeds (2) | too few "
            "seeds (2) |" in md)
    assert "Holm–Bonferroni" in md
    # the paper table of the text domain: agnews 200 meanteacher has 1 seed (as many as found)
    assert "| fixmatch | **25.00 ± 7.07** | **16.00 ± 1.41** | 20.50 | 1.00 |" in md
    assert "Too few settings for a Friedman test" in md
    assert "39 of 39 runs" in md and "Partial report" not in md


def _composed_runs(root: Path, runs: dict[str, tuple[str, str | None]],
                   errors: dict[str, list[float]]) -> pd.DataFrame:
    """Runs whose metrics.json record their composition (config.algorithm, imbalance) as the
    trainer writes it; ``runs``: label -> (algorithm, imbalance method or None)."""
    paths = []
    for label, (algorithm, imbalance) in runs.items():
        for seed, error in enumerate(errors[label]):
            metrics, _ = _write_run(root, "mnist", 40, label, seed, error)
            data = json.loads(metrics.read_text(encoding="utf-8"))
            data["imbalance"] = imbalance
            data["config"] = {"algorithm": algorithm,
                              **({"imbalance": imbalance} if imbalance else {})}
            metrics.write_text(json.dumps(data), encoding="utf-8")
            paths.append(metrics)
    return collect_runs(paths)


def test_imbalance_methods_are_compared_with_their_base(tmp_path: Path) -> None:
    from semibench.report.aggregate import composition_base

    runs = _composed_runs(tmp_path, {"fixmatch": ("fixmatch", None),
                                     "fixmatch_debiaspl": ("fixmatch", "debiaspl")},
                          {"fixmatch": [16.0, 11.0, 13.0], "fixmatch_debiaspl": [11.0, 10.0, 12.0]})
    assert composition_base(runs) == {"fixmatch_debiaspl": "fixmatch"}
    cmp = compare_to_baseline(runs)  # no supervised runs: only the base comparison
    assert cmp[["algorithm", "baseline"]].values.tolist() == [["fixmatch_debiaspl", "fixmatch"]]
    row = cmp.iloc[0]
    assert row["mean_difference"] == pytest.approx(-7.0 / 3)
    assert row["p_value"] == pytest.approx(
        stats.ttest_rel([11.0, 10.0, 12.0], [16.0, 11.0, 13.0]).pvalue)
    assert runs["imbalance"].tolist() == [""] * 3 + ["debiaspl"] * 3
    assert set(runs["base_algorithm"]) == {"fixmatch"}
    # runs.csv carries the fields: the later report stages read no metrics.json
    csv_path = tmp_path / "runs.csv"
    runs.to_csv(csv_path, index=False)
    assert composition_base(pd.read_csv(csv_path)) == {"fixmatch_debiaspl": "fixmatch"}


def test_a_plugin_algorithm_named_like_a_composition_is_no_imbalance_method(
        tmp_path: Path) -> None:
    """``fixmatch_v2`` (a plugin's own algorithm) beside ``fixmatch``: the report reads the
    runs' fields, not the name, so it is not an imbalance method of FixMatch; an older file
    without the fields reads as no composition either."""
    from semibench.report.aggregate import composition_base

    runs = _composed_runs(tmp_path, {"fixmatch": ("fixmatch", None),
                                     "fixmatch_v2": ("fixmatch_v2", None)},
                          {"fixmatch": [16.0, 11.0, 13.0], "fixmatch_v2": [11.0, 10.0, 12.0]})
    assert composition_base(runs) == {}
    assert compare_to_baseline(runs).empty
    old = _write_run(tmp_path / "old", "mnist", 40, "fixmatch_abc", 0, 10.0)[0]
    assert composition_base(collect_runs([old])) == {}


def test_compare_to_baseline_matches_scipy(results: dict) -> None:
    cmp = compare_to_baseline(results["runs"])
    # neither the baseline nor the upper bound (it sees every label) is compared
    assert set(cmp["algorithm"]) == {"fixmatch", "meanteacher"}
    assert len(cmp) == 8
    for (task, nl, alg), values in BEST.items():
        if alg in ("supervised", "fullysupervised"):
            continue
        row = _row(cmp, task, nl, alg)
        base = BEST[(task, nl, "supervised")][: len(values)]
        assert row["n_shared_seeds"] == len(values)
        diffs = [a - b for a, b in zip(values, base, strict=True)]
        assert row["mean_difference"] == pytest.approx(sum(diffs) / len(diffs))
        if len(values) < 3:
            assert math.isnan(row["p_value"]) and math.isnan(row["p_holm"])
        else:
            assert row["p_value"] == pytest.approx(stats.ttest_rel(values, base).pvalue)
    fix = _row(cmp, "mnist", 40, "fixmatch")
    assert fix["p_value"] == pytest.approx(stats.ttest_rel([5, 6, 10], [30, 32, 34]).pvalue)
    assert fix["mean_difference"] == pytest.approx(-25.0)
    # Holm by hand over the four tested cells (mnist): sort p ascending, multiply the i-th
    # smallest by (m - i), keep the running maximum, cap at 1
    tested = cmp.dropna(subset=["p_value"]).sort_values("p_value")
    m, running, expected = len(tested), 0.0, []
    for i, p in enumerate(tested["p_value"]):
        running = max(running, min(1.0, (m - i) * p))
        expected.append(running)
    assert len(tested) == 4
    assert tested["p_holm"].tolist() == pytest.approx(expected)


def test_figures_are_deterministic_pngs(results: dict, tmp_path: Path) -> None:
    figures = results["figures"]
    kinds = ["", "_curves", "_pseudolabels", "_per_class"]
    assert [p.name for p in figures] == [
        *(f"agnews{k}.png" for k in kinds), *(f"mnist{k}.png" for k in kinds), "cost_pareto.png"]
    for path in figures:
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert len(data) > 10_000
    collected = results["collected"]
    again = write_figures(results["runs"], collected.curves, collected.per_class, tmp_path)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in figures]


def test_one_colour_per_algorithm_everywhere() -> None:
    colors = algorithm_colors(["fixmatch", "supervised", "fullysupervised", "flexmatch"])
    assert list(colors) == ["supervised", "fixmatch", "flexmatch", "fullysupervised"]
    assert len(set(colors.values())) == 4
    # the baselines are grey and black whatever else is configured
    assert colors["supervised"] == algorithm_colors(["supervised", "uda"])["supervised"]
    assert max(colors["fullysupervised"]) < 0.2
    # 19 algorithms (USB's set) still get 19 distinct colours
    many = [f"alg{i:02d}" for i in range(17)] + ["supervised", "fullysupervised"]
    assert len(set(algorithm_colors(many).values())) == 19


def test_html_is_self_contained(results: dict) -> None:
    root = results["root"]
    out = write_html(
        results["runs"],
        results["figures"],
        root / "report.html",
        title="SemiBench <test> & co",
        config={"note": "<script>alert(1)</script>"},
    )
    page = out.read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') == len(results["figures"]) == 9
    assert "http://" not in page and "https://" not in page
    # one inline script (the table sorter), nothing loaded from elsewhere
    assert page.count("<script") == 1 and "<script>" in page and " src=" not in page.replace(
        '<img src="data:', "")
    assert "SemiBench &lt;test&gt; &amp; co" in page and "<test>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "39 of 39 runs over 2 tasks" in page
    assert "<strong>25.00 ± 7.07</strong>" in page
    assert "<strong>1.50" not in page
    assert 'class="data sortable paper"' in page
    # a table of contents that points at sections that exist
    for anchor in re.findall(r'<a href="#([^"]+)"', page):
        assert f'id="{anchor}"' in page, anchor
    # one per-run row: mnist, 40 labels, fixmatch, seed 2, best 10, last 11, val 9.5 at it 200
    # on 40 validation samples, 12 s = 0.20 min, cpu, fp32
    assert ["mnist", "40", "fixmatch", "2", "10.00", "11.00", "9.50", "200", "40", "0.20", "cpu",
            "fp32"] in table_rows(page, "runs")


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


def test_validation_size_is_shown_beside_the_selected_checkpoint(tmp_path: Path) -> None:
    """metrics.json's ``val_size`` reaches runs.csv and the run table; a file written before
    it existed reads as unknown (NaN, "n/a"), not as an error."""
    new, _ = _write_run(tmp_path, "mnist", 40, "fixmatch", 0, 10.0)
    old, _ = _write_run(tmp_path, "mnist", 40, "fixmatch", 1, 12.0)
    data = json.loads(old.read_text())
    del data["val_size"]
    old.write_text(json.dumps(data))
    runs = collect_runs([new, old])
    assert runs["val_size"].iloc[0] == 40 and math.isnan(runs["val_size"].iloc[1])
    page = write_html(runs, {}, tmp_path / "report.html", title="t", config={}).read_text()
    rows = table_rows(page, "runs")
    assert [r[8] for r in rows if r[:4] == ["mnist", "40", "fixmatch", "0"]] == ["40"]
    assert [r[8] for r in rows if r[:4] == ["mnist", "40", "fixmatch", "1"]] == ["n/a"]
    # a runs.csv of an older report (no val_size column) still gives a run table
    page = write_html(runs.drop(columns="val_size"), {}, tmp_path / "r2.html", title="t",
                      config={}).read_text()
    assert {r[8] for r in table_rows(page, "runs")} == {"n/a"}


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


def test_markdown_tables_come_from_the_view_model_tables() -> None:
    """summary.md's pipe tables are the page's view tables: columns picked and renamed by the
    template, numeric columns right-aligned, best cells bold, pipes escaped."""
    from semibench.report.tables import md_table
    from semibench.report.view import Cell, Header, Row, Table

    table = Table([Header("algorithm"), Header("a|b"), Header("20 labels", numeric=True)],
                  [Row([Cell("fixmatch"), Cell("x|y"), Cell("1.00 ± 0.10", mark="best")]),
                   Row([Cell("supervised"), Cell("z"), Cell("2.00 ± n/a")])])
    assert md_table(table).splitlines() == [
        "| algorithm | a\\|b | 20 labels |", "|:---|:---|---:|",
        "| fixmatch | x\\|y | **1.00 ± 0.10** |", "| supervised | z | 2.00 ± n/a |"]
    assert md_table(table, columns=["algorithm", "20 labels"], headers=["alg", "n"],
                    align="lr").splitlines()[:2] == ["| alg | n |", "|:---|---:|"]
