"""The report's comparison with USB's published error rates."""

import math

import pandas as pd
import pytest

from semibench.report import published
from semibench.report.aggregate import summarize


def runs_frame(rows):
    base = {"domain": "image", "best_val_error": 1.0, "best_iteration": 1, "wall_time_s": 1.0,
            "device": "cpu", "text_strong_view": "", "metrics_path": "x"}
    return pd.DataFrame([{**base, **r, "last_test_error": r["best_test_error"]} for r in rows])


def test_published_table_ships_with_the_package_and_has_every_usb_table():
    table = published.load_published()
    assert set(table["benchmark"]) == set(published.BENCHMARKS)
    # a few values read off USB's CSVs (usb-protocol.md, results/*.csv)
    def value(benchmark, task, n, alg):
        row = table.loc[(table.benchmark == benchmark) & (table.task == task)
                        & (table.num_labels == n) & (table.algorithm == alg)]
        assert len(row) == 1, (benchmark, task, n, alg)
        return float(row.error_mean.iloc[0]), float(row.error_std.iloc[0])
    assert value("usb_nlp", "imdb", 20, "fixmatch") == (7.72, 0.33)
    assert value("usb_audio", "fsdnoisy18k", 1773, "softmatch") == (28.26, 0.3)
    assert value("classic_cv", "cifar10", 40, "flexmatch") == (5.21, 0.36)


def test_unknown_table_is_rejected_with_the_allowed_names():
    with pytest.raises(ValueError, match="usb_xyz.*allowed"):
        published.load_published(["usb_xyz"])


def test_comparison_matches_task_budget_and_algorithm():
    runs = runs_frame([
        {"task": "imdb", "num_labels": 20, "algorithm": "fixmatch", "seed": 0, "best_test_error": 8.0},
        {"task": "imdb", "num_labels": 20, "algorithm": "fixmatch", "seed": 1, "best_test_error": 10.0},
        {"task": "imdb", "num_labels": 21, "algorithm": "fixmatch", "seed": 0, "best_test_error": 9.0},
        {"task": "mnist", "num_labels": 40, "algorithm": "fixmatch", "seed": 0, "best_test_error": 9.0},
        # our FSDnoisy18k budget (the source's 1,772 clean clips) is USB's 1,773
        {"task": "fsdnoisy18k", "num_labels": 1772, "algorithm": "softmatch", "seed": 0,
         "best_test_error": 30.0},
    ])
    table = published.compare_to_published(summarize(runs), ["usb_nlp", "usb_audio"])
    assert list(table.columns) == list(published.COLUMNS)
    rows = {(r.task, r.num_labels, r.algorithm): r for r in table.itertuples(index=False)}
    assert set(rows) == {("imdb", 20, "fixmatch"), ("fsdnoisy18k", 1772, "softmatch")}
    imdb = rows[("imdb", 20, "fixmatch")]
    assert (imdb.ours_mean, imdb.usb_mean, imdb.usb_std, imdb.n_seeds) == (9.0, 7.72, 0.33, 2)
    assert math.isclose(imdb.ours_std, math.sqrt(2.0))
    assert math.isclose(imdb.difference, 9.0 - 7.72)
    assert rows[("fsdnoisy18k", 1772, "softmatch")].usb_benchmark == "usb_audio"


def test_a_task_in_two_usb_tables_uses_the_first_named():
    runs = runs_frame([{"task": "cifar100", "num_labels": 400, "algorithm": "fixmatch", "seed": 0,
                        "best_test_error": 20.0}])
    first = published.compare_to_published(summarize(runs), ["classic_cv", "usb_cv"])
    second = published.compare_to_published(summarize(runs), ["usb_cv", "classic_cv"])
    assert first.usb_benchmark.tolist() == ["classic_cv"]
    assert second.usb_benchmark.tolist() == ["usb_cv"]
    assert first.usb_mean.iloc[0] != second.usb_mean.iloc[0]


def test_no_tables_named_gives_an_empty_comparison():
    runs = runs_frame([{"task": "imdb", "num_labels": 20, "algorithm": "fixmatch", "seed": 0,
                        "best_test_error": 8.0}])
    assert published.compare_to_published(summarize(runs), []).empty


def test_within_two_std_and_the_summary_count():
    # USB imdb/20: fixmatch 7.72 ± 0.33 (inside: 7.06..8.38), supervised 20.31 ± 2.79
    runs = runs_frame([
        {"task": "imdb", "num_labels": 20, "algorithm": "fixmatch", "seed": 0,
         "best_test_error": 8.3},
        {"task": "imdb", "num_labels": 20, "algorithm": "supervised", "seed": 0,
         "best_test_error": 26.0},
    ])
    table = published.compare_to_published(summarize(runs), ["usb_nlp"])
    inside = dict(zip(table["algorithm"], table["within_2std"], strict=True))
    assert inside == {"fixmatch": True, "supervised": False}  # |26 - 20.31| = 5.69 > 5.58
    assert published.summary_line(table) == (
        "Ours is inside USB's mean ± 2 std on 1 of 2 published cells.")


def test_a_configured_cell_without_runs_is_listed_as_missing():
    from semibench.report.aggregate import cells, grid_frame

    runs = runs_frame([{"task": "imdb", "num_labels": 20, "algorithm": "fixmatch", "seed": 0,
                        "best_test_error": 8.0}])
    grid = grid_frame([("imdb", 20, "fixmatch", 0), ("imdb", 20, "fixmatch", 1),
                       ("imdb", 100, "fixmatch", 0)], {"imdb": "text"})
    table = published.compare_to_published(cells(runs, grid), ["usb_nlp"])
    rows = {int(r.num_labels): r for r in table.itertuples(index=False)}
    assert set(rows) == {20, 100}
    assert rows[20].n_seeds == 1 and rows[20].within_2std is not None
    assert rows[100].n_seeds == 0 and math.isnan(rows[100].ours_mean)
    assert rows[100].within_2std is None and rows[100].usb_mean == 7.33
    assert published.summary_line(table).endswith("(1 more not finished yet).")


def test_tables_markdown_and_html_show_the_published_numbers(tmp_path):
    from semibench.report.html import render_html
    from semibench.report.tables import build, write_tables

    runs = runs_frame([
        {"task": "imdb", "num_labels": 20, "algorithm": "fixmatch", "seed": s,
         "best_test_error": e} for s, e in ((0, 8.0), (1, 10.0))
    ] + [{"task": "imdb", "num_labels": 20, "algorithm": "supervised", "seed": 0,
          "best_test_error": 30.0}])
    paths = write_tables(runs, tmp_path, published=["usb_nlp"])
    table = pd.read_csv(paths["usb_published.csv"])
    assert table[["algorithm", "usb_mean"]].values.tolist() == [["supervised", 20.31],
                                                                 ["fixmatch", 7.72]]
    assert table["within_2std"].tolist() == [False, False]
    md = paths["summary.md"].read_text()
    assert "## USB's published error rates (usb_nlp)" in md
    assert "| imdb | 20 | fixmatch | 9.00 ± 1.41 | 7.72 ± 0.33 | +1.28 | no |" in md
    assert "Ours is inside USB's mean ± 2 std on 0 of 2 published cells." in md
    assert "USB picks its vision checkpoints on the test set" in md
    html = render_html(build(runs, published=["usb_nlp"]), [], "t")
    assert 'id="published"' in html and "7.72 ± 0.33" in html and "+1.28" in html
    assert "on 0 of 2 published cells" in html
    assert 'id="published"' not in render_html(build(runs), [], "t")
