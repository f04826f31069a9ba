"""The report page in a real browser: Debian's headless Chromium (installed with apt-get by the
test set-up where missing and possible, skipped with the reason otherwise).

The page must load without console errors or failed loads, every figure must be decoded and
laid out with a non-zero size, the tables must be there and sortable, and a screenshot is
saved under the test's tmp dir (``report.png``, the whole page at half scale, and
``report_top.png``, the first screen).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chromium import Browser, ensure_chromium
from report_runs import DOMAINS, write_run

from semibench.cli import main
from semibench.report import layout

pytestmark = pytest.mark.slow

BUDGETS = (20, 40, 60, 80, 100)  # 5 settings: enough for a Friedman test and a CD diagram
ALGORITHMS = ("supervised", "fixmatch", "flexmatch", "fullysupervised")
GRID = [("mnist", n, a, s) for n in BUDGETS for a in ALGORITHMS for s in (0, 1)]
GRID += [("keywords", 50, a, s) for a in ALGORITHMS[:2] for s in (0, 1)]


@pytest.fixture(scope="module")
def chromium() -> str:
    binary, why = ensure_chromium()
    if binary is None:
        pytest.skip(why)
    return binary


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A complete report through the three commands the workflow runs."""
    root = tmp_path_factory.mktemp("browser")
    for key in GRID[:-1]:  # the last keywords run has not finished: the page is partial
        write_run(root, "fake", *key)
    done = GRID[:-1]
    dirs = [root / layout.run_dir("fake", *key) for key in done]
    tables, figures_dir = root / "tables", root / "figures"
    grid = json.dumps({"domains": {t: DOMAINS[t] for t, *_ in GRID}, "runs": GRID})
    assert main(["aggregate", "--metrics", *(str(d / "metrics.json") for d in dirs),
                 "--curves", *(str(d / "curve.csv") for d in dirs), "--grid-json", grid,
                 "--out-dir", str(tables), "--published", "usb_cv"]) == 0
    assert main(["figures", "--runs", str(tables / "runs.csv"), "--grid", str(tables / "grid.csv"),
                 "--curves", str(tables / "curves.csv"), "--per-class",
                 str(tables / "per_class.csv"), "--cd-groups", "image",
                 "--out-dir", str(figures_dir)]) == 0
    figures = sorted(str(p) for p in figures_dir.glob("*.png"))
    html = root / "index.html"
    assert main(["report", "--runs", str(tables / "runs.csv"), "--grid", str(tables / "grid.csv"),
                 "--figures", *figures, "--out", str(html), "--title", "SemiBench: browser test",
                 "--config-json", json.dumps({"benchmark": "fake"}), "--published",
                 "usb_cv"]) == 0
    return {"html": html, "figures": figures}


def test_the_page_renders_in_chromium(chromium: str, page: dict, tmp_path: Path) -> None:
    with Browser(chromium, tmp_path / "profile") as browser:
        browser.open(page["html"])
        state = browser.evaluate("""JSON.stringify({
            images: Array.from(document.images).map(i => ({
                alt: i.alt, complete: i.complete, natural: i.naturalWidth,
                width: i.getBoundingClientRect().width,
                height: i.getBoundingClientRect().height})),
            tables: document.querySelectorAll("table.data").length,
            paperRows: document.querySelectorAll("#results > .table-wrap table.paper tbody tr").length,
            brokenLinks: Array.from(document.querySelectorAll("nav.toc a"))
                .filter(a => !document.getElementById(a.getAttribute("href").slice(1)))
                .map(a => a.getAttribute("href")),
            cd: !!document.querySelector("#fig-cd_image img"),
            banner: (document.getElementById("partial") || {}).textContent || ""})""")
        state = json.loads(state)
        assert browser.problems() == []
        assert len(state["images"]) == len(page["figures"]) == 2 * 4 + 2
        for image in state["images"]:
            assert image["complete"] and image["natural"] > 0, image
            assert image["width"] > 200 and image["height"] > 100, image
        assert state["tables"] >= 10 and state["paperRows"] == 4 + 2  # image, audio
        assert state["brokenLinks"] == [] and state["cd"]
        assert "Partial report: 43 of 44 runs finished." in state["banner"]

        # the runs table sorts by a numeric column, both ways, and back
        column = """Array.from(document.querySelectorAll("#runs tbody tr"))
                    .map(r => parseFloat(r.cells[4].textContent))"""
        before = browser.evaluate(f"JSON.stringify({column})")
        browser.evaluate('document.querySelectorAll("#runs thead th")[4].click()')
        ascending = json.loads(browser.evaluate(f"JSON.stringify({column})"))
        browser.evaluate('document.querySelectorAll("#runs thead th")[4].click()')
        descending = json.loads(browser.evaluate(f"JSON.stringify({column})"))
        browser.evaluate('document.querySelectorAll("#runs thead th")[4].click()')
        assert ascending == sorted(ascending) and descending == sorted(ascending, reverse=True)
        assert browser.evaluate(f"JSON.stringify({column})") == before
        assert browser.problems() == []

        top = browser.screenshot(tmp_path / "report_top.png")
        full = browser.screenshot(tmp_path / "report.png", full_page=True, scale=0.5)
    for shot in (top, full):
        assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
    print(f"\nscreenshots: {top} {full}")


def test_a_split_report_pages_its_tables_and_loads_its_figures_lazily(
        chromium: str, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """A large sweep's report (here forced with --pages split): the task page's 120 runs in
    pages of 100 with a filter, its figures fetched only as they come into view, every link
    and figure of the index page where the page looks for it, and no console error."""
    from test_report_scale import FINISHED, _split_report

    root = tmp_path_factory.mktemp("split")
    for key in FINISHED:
        write_run(root, "fake", *key)
    _split_report(root, root)
    page = root / "page"
    with Browser(chromium, tmp_path / "profile", height=900) as browser:
        browser.open(page / "tasks" / "mnist.html")
        state = json.loads(browser.evaluate("""JSON.stringify({
            info: document.querySelector("#runs .pager .note").textContent,
            shown: Array.from(document.querySelectorAll("#runs tbody tr"))
                .filter(r => !r.hidden).length,
            lazy: Array.from(document.images).map(i => i.loading),
            loaded: Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)})"""))
        assert state["info"] == "rows 1\u2013100 of 120, page 1 of 2" and state["shown"] == 100
        assert set(state["lazy"]) == {"lazy"}
        # below the fold: not fetched yet (Chromium loads lazy images near the viewport)
        assert state["loaded"][0] and not state["loaded"][-1]
        browser.evaluate('document.querySelector("#runs .pager button:nth-of-type(2)").click()')
        assert browser.evaluate('document.querySelector("#runs .pager .note").textContent') \
            == "rows 101\u2013120 of 120, page 2 of 2"
        # the filter: every word typed, in any cell of the row
        browser.evaluate("""(() => { const box = document.querySelector("#runs .pager input");
            box.value = "flexmatch 100"; box.dispatchEvent(new Event("input")); })()""")
        rows = json.loads(browser.evaluate("""JSON.stringify(Array.from(
            document.querySelectorAll("#runs tbody tr")).filter(r => !r.hidden)
            .map(r => [r.cells[1].textContent, r.cells[2].textContent]))"""))
        assert rows == [["100", "flexmatch"]] * 6
        # sorting keeps the pages: the rows shown are the first 100 in the new order
        browser.evaluate("""(() => { const box = document.querySelector("#runs .pager input");
            box.value = ""; box.dispatchEvent(new Event("input"));
            document.querySelectorAll("#runs thead th")[4].click(); })()""")
        errors = json.loads(browser.evaluate("""JSON.stringify(Array.from(
            document.querySelectorAll("#runs tbody tr")).filter(r => !r.hidden)
            .map(r => parseFloat(r.cells[4].textContent)))"""))
        assert len(errors) == 100 and errors == sorted(errors)
        # scrolled into view, the last figure loads from ../figures/
        browser.evaluate("""new Promise(done => { const img = document.images[
            document.images.length - 1]; img.scrollIntoView(); if (img.complete) done();
            img.onload = done; setTimeout(done, 5000); })""")
        assert browser.evaluate("""(() => { const i = document.images[
            document.images.length - 1]; return i.complete && i.naturalWidth > 0; })()""")
        assert browser.problems() == []
        browser.screenshot(tmp_path / "task_page.png")

        browser.open(page / "index.html")
        state = json.loads(browser.evaluate("""JSON.stringify({
            tasks: Array.from(document.querySelectorAll("#tasks tbody a"))
                .map(a => a.getAttribute("href")),
            brokenLinks: Array.from(document.querySelectorAll("nav.toc a"))
                .filter(a => !document.getElementById(a.getAttribute("href").slice(1)))
                .map(a => a.getAttribute("href")),
            embedded: Array.from(document.images).filter(i => i.src.startsWith("data:")).length})
            """))
        assert state["tasks"] == ["tasks/keywords.html", "tasks/mnist.html",
                                  "tasks/newsgroups.html"]
        assert state["brokenLinks"] == [] and state["embedded"] == 0
        browser.evaluate("""Promise.all(Array.from(document.images).map(img => new Promise(
            done => { img.scrollIntoView(); if (img.complete) done(); img.onload = done;
            setTimeout(done, 5000); })))""")
        assert browser.evaluate("Array.from(document.images).every(i => i.naturalWidth > 0)")
        assert browser.problems() == []
        shot = browser.screenshot(tmp_path / "index_page.png")
    assert shot.stat().st_size > 20_000
    print(f"\nscreenshots: {tmp_path / 'task_page.png'} {shot}")
