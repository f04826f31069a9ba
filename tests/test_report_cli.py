"""The report's commands: aggregate -> figures -> report with explicit inputs only, and
``semibench report --partial`` of a sweep that has not finished ("n of N runs")."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from report_runs import DOMAINS, config, table_rows, write_run

from semibench.cli import main
from semibench.report import layout

ALGORITHMS = ("supervised", "fixmatch", "fullysupervised")
GRID = [(t, n, a, s) for t, n in (("keywords", 50), ("mnist", 20)) for a in ALGORITHMS
        for s in (0, 1)]


def _grid_json(grid=GRID) -> str:
    return json.dumps({"domains": {t: DOMAINS[t] for t, *_ in grid}, "runs": grid})


def test_the_report_uses_only_its_declared_inputs(tmp_path: Path) -> None:
    """Item 8: an earlier config of the same benchmark left runs, curves and figures behind;
    none of them may appear. Once aggregate has read the declared files, the runs directory
    is not needed any more: figures and report read only aggregate's tables and the figure
    files they are given."""
    for t, n, a, s in GRID:
        write_run(tmp_path, "fake", t, n, a, s)
    # leftovers of an earlier config with the same benchmark name
    write_run(tmp_path, "fake", "mnist", 20, "flexmatch", 0)
    figures_dir = tmp_path / layout.FIGURES_DIR.format(benchmark="fake")
    figures_dir.mkdir(parents=True)
    stale = figures_dir / "newsgroups_curves.png"
    shutil.copy(Path(__file__).with_name("report_runs.py"), stale)  # not even a PNG

    tables = tmp_path / "tables"
    run_dirs = [tmp_path / layout.run_dir("fake", *key) for key in GRID]
    assert main(["aggregate", "--metrics", *(str(d / "metrics.json") for d in run_dirs),
                 "--curves", *(str(d / "curve.csv") for d in run_dirs),
                 "--benchmarks", *(str(tmp_path / layout.train_benchmark("fake", *key))
                                   for key in GRID),
                 "--grid-json", _grid_json(), "--out-dir", str(tables)]) == 0
    shutil.rmtree(tmp_path / "results" / "fake" / "runs")  # nothing may read it from here on
    assert main(["figures", "--runs", str(tables / "runs.csv"), "--grid", str(tables / "grid.csv"),
                 "--curves", str(tables / "curves.csv"),
                 "--per-class", str(tables / "per_class.csv"), "--out-dir", str(figures_dir)]) == 0
    made = sorted(p.name for p in figures_dir.glob("*.png") if p != stale)
    assert made == sorted([f"{t}{k}.png" for t in ("keywords", "mnist")
                           for k in ("", "_curves", "_pseudolabels", "_per_class")]
                          + ["cost_pareto.png"])
    figures = [str(figures_dir / name) for name in made]
    page = tmp_path / "index.html"
    assert main(["report", "--runs", str(tables / "runs.csv"), "--grid", str(tables / "grid.csv"),
                 "--figures", *figures, "--out", str(page), "--title", "t"]) == 0
    html = page.read_text(encoding="utf-8")
    assert html.count('<img src="data:image/png;base64,') == len(figures) == 9
    assert "newsgroups" not in html and "flexmatch" not in html
    assert "12 of 12 runs" in html
    runs = pd.read_csv(tables / "runs.csv")
    assert len(runs) == 12 and set(runs["algorithm"]) == set(ALGORITHMS)
    assert runs["job_max_rss_mb"].tolist() == [900.5] * 12  # from the benchmark files
    assert len(pd.read_csv(tables / "curves.csv")) == 12 * 4


def test_aggregate_pairs_files_per_run(tmp_path: Path) -> None:
    dirs = [write_run(tmp_path, "fake", "mnist", 20, "fixmatch", s) for s in (0, 1)]
    with pytest.raises(ValueError, match="one per run"):
        main(["aggregate", "--metrics", *(str(d / "metrics.json") for d in dirs),
              "--curves", str(dirs[0] / "curve.csv"), "--out-dir", str(tmp_path / "t")])


@pytest.fixture(scope="module")
def partial(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A sweep of 12 runs of which 9 have finished (one cell empty, one cell 1 of 2 seeds)."""
    workdir = tmp_path_factory.mktemp("sweep")
    missing = {("keywords", 50, "fixmatch", 0), ("keywords", 50, "fixmatch", 1),
               ("mnist", 20, "fixmatch", 1)}
    for key in GRID:
        if key not in missing:
            write_run(workdir, "fake", *key, benchmark_file=key[3] == 0)
    cfg = workdir / "fake.yaml"
    cfg.write_text(yaml.safe_dump(config(algorithms=ALGORITHMS)), encoding="utf-8")
    assert main(["report", "--partial", "--configfile", str(cfg), "--directory",
                 str(workdir)]) == 0
    out = workdir / layout.PARTIAL_DIR.format(benchmark="fake")
    return {"workdir": workdir, "out": out, "html": (out / "index.html").read_text("utf-8")}


def test_partial_report_says_n_of_n_and_marks_missing_cells(partial: dict) -> None:
    html, out = partial["html"], partial["out"]
    assert "Partial report: 9 of 12 runs finished." in html
    assert "SemiBench: fake (partial: 9 of 12 runs)" in html
    # the empty cell is marked, the half-finished one says how many seeds it has
    audio = html.split('id="paper-audio"', 1)[1].split("</table>", 1)[0]
    assert 'class="missing"' in audio and ">missing<" in audio
    assert "(1/2 seeds)" in html.split('id="paper-image"', 1)[1].split("</table>", 1)[0]
    assert sorted(table_rows(html, "missing")) == [["keywords", "50", "fixmatch", "0"],
                                                   ["keywords", "50", "fixmatch", "1"],
                                                   ["mnist", "20", "fixmatch", "1"]]
    md = (out / "tables" / "summary.md").read_text(encoding="utf-8")
    assert "**Partial report: 9 of 12 runs finished.**" in md
    assert "| fixmatch | missing | – | – |" in (out / "tables" / "paper_audio.md").read_text()
    grid = pd.read_csv(out / "tables" / "grid.csv")
    assert len(grid) == 12 and len(pd.read_csv(out / "tables" / "runs.csv")) == 9
    # runs without a benchmark file have unknown job costs, not zero
    runs = pd.read_csv(out / "tables" / "runs.csv")
    assert runs.loc[runs["seed"] == 1, "job_wall_s"].isna().all()
    assert runs.loc[runs["seed"] == 0, "job_wall_s"].notna().all()
    # the complete report, owned by Snakemake, is not touched
    assert not (partial["workdir"] / layout.REPORT_HTML.format(benchmark="fake")).exists()


def test_partial_report_writes_every_figure(partial: dict) -> None:
    figures = sorted(p.name for p in (partial["out"] / "figures").glob("*.png"))
    assert len(figures) == 9 and "cost_pareto.png" in figures
    assert len(re.findall(r'<img src="data:image/png;base64,', partial["html"])) == 9


def test_partial_report_needs_a_config(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--configfile is required"):
        main(["report", "--partial"])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**config(), "algorithms": ["nomatch"]}), encoding="utf-8")
    with pytest.raises(SystemExit, match="unknown algorithm 'nomatch'"):
        main(["report", "--partial", "--configfile", str(bad)])
