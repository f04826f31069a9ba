"""The documentation: the README's shape and generated results table, the site's strict build,
and the pages checked against the code, so that a renamed config key, CLI option, make target
or file fails here instead of misleading a reader.

What can go stale, and what checks it:
- a link or an anchor between pages, a page missing from the nav, a quoted file: the strict
  mkdocs build (which also generates the reference from the schema and the registries);
- a config key: every YAML block and every dotted key in code (``train.amp``) against the
  schema;
- a command: every ``semibench <command> --option`` against the CLI's parser, every
  ``make <target>`` against the Makefile;
- a file: every repository path in code (``config/usb.yaml``) must exist.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from semibench import docs

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted((REPO / "docs").rglob("*.md"))
TEXTS = {p: p.read_text(encoding="utf-8") for p in [REPO / "README.md", *PAGES]}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


def _blocks(lang: str | tuple[str, ...]) -> list[tuple[Path, str]]:
    langs = (lang,) if isinstance(lang, str) else lang
    return [(p, m.group(2)) for p, text in TEXTS.items() for m in FENCE.finditer(text)
            if m.group(1) in langs]


def _spans() -> list[tuple[Path, str]]:
    return [(p, m.group(1).strip()) for p, text in TEXTS.items()
            for m in SPAN.finditer(FENCE.sub("", text))]


# --------------------------------------------------------------------------- README


def test_readme_is_short_with_the_two_quick_start_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    quick = text.split("## Quick start", 1)[1]
    block = FENCE.search(quick)
    assert block and block.group(2).splitlines() == ["make benchmark", "make test"]
    assert text.count(docs.START) == 1 and text.count(docs.END) == 1
    table = text.split(docs.START, 1)[1].split(docs.END, 1)[0]
    assert "| algorithm |" in table


def test_readme_links_exist():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not target.startswith("http"):
            assert (REPO / target).exists(), target


def _fake_runs(workdir: Path) -> Path:
    """Finished runs of a small benchmark, in the trainer's format, and its tables folder
    written by ``semibench aggregate`` as the workflow writes it."""
    sys.path.insert(0, str(REPO / "tests"))
    import report_runs

    from semibench.cli import main

    metrics = [report_runs.write_run(workdir, "offline", task, n, alg, seed) / "metrics.json"
               for task, n in (("mnist", 40), ("keywords", 100))
               for alg in ("fixmatch", "fullysupervised", "supervised") for seed in (0, 1)]
    tables = workdir / "results/offline/tables"
    assert main(["aggregate", "--metrics", *map(str, metrics), "--out-dir", str(tables)]) == 0
    return tables


def test_readme_table_is_generated_from_a_finished_run(tmp_path):
    tables = _fake_runs(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{docs.START}\nold numbers\n{docs.END}\nafter\n",
                      encoding="utf-8")
    assert docs.main(["readme", "--tables", str(tables), "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert "old numbers" not in text and text.endswith(f"{docs.END}\nafter\n")
    rows = [r for r in text.splitlines() if r.startswith("| ")]
    # columns in summary.csv's order (the report's)
    assert rows[0] in ("| algorithm | mnist (40) | keywords (100) |",
                       "| algorithm | keywords (100) | mnist (40) |")
    # supervised first and fully supervised last; each cell from summary.csv's mean and std
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| supervised", "| fixmatch",
                                                     "| fullysupervised"]
    with open(tables / "summary.csv", newline="", encoding="utf-8") as fh:
        cell = next(r for r in csv.DictReader(fh)
                    if (r["task"], r["algorithm"]) == ("mnist", "fixmatch"))
    mean, std = float(cell["best_test_error_mean"]), float(cell["best_test_error_std"])
    assert f" {mean:.1f} ± {std:.1f} " in rows[2]
    assert "over 2 seeds" in text
    # a second run of the same tables changes nothing
    docs.main(["readme", "--tables", str(tables), "--readme", str(readme)])
    assert readme.read_text(encoding="utf-8") == text


def test_readme_without_results_or_markers_is_one_line(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="summary.csv: no such file"):
        docs.main(["readme", "--tables", str(tmp_path), "--readme", str(readme)])
    (tmp_path / "summary.csv").write_text(
        "task,domain,num_labels,algorithm,n_seeds,best_test_error_mean,best_test_error_std\n"
        "mnist,image,40,fixmatch,2,10.0,1.0\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="results:start"):
        docs.main(["readme", "--tables", str(tmp_path), "--readme", str(readme)])


# --------------------------------------------------------------------------- the site


def test_site_builds_strictly_offline(tmp_path):
    """Broken links and anchors, pages outside the nav, quoted files that are gone and
    reference pages that cannot be generated all fail the strict build."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    site = tmp_path / "site"
    # not -q: mkdocs counts the warnings that fail --strict only when it logs them
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                             "-f", str(REPO / "mkdocs.yml"), "-d", str(site)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index", "deviations", "reference/config-keys", "reference/algorithms",
                 "reference/imbalance", "reference/tasks", "reference/backbones",
                 "reference/cli"):
        assert (site / f"{page}.html").is_file(), page
    keys = (site / "reference/config-keys.html").read_text(encoding="utf-8")
    assert "iterations" in keys and "from_files" in keys
    assert "p_cutoff" in (site / "reference/algorithms.html").read_text(encoding="utf-8")
    assert not (site / "hooks").exists()
    # offline: no page loads anything from the network
    for html in site.rglob("*.html"):
        assert not re.search(r"<(?:link|script)[^>]+(?:href|src)=\"https?://",
                             html.read_text(encoding="utf-8")), html


def test_generated_pages_are_not_committed():
    for rel in docs.reference_pages.__code__.co_consts:
        if isinstance(rel, str) and rel.endswith(".md"):
            assert not (REPO / "docs" / rel).exists(), rel


# --------------------------------------------------------------------------- stale references


def _schema_paths() -> set[str]:
    schema = docs.load_schema(REPO)
    return {p for p, _ in docs.schema_keys(schema)}


#: keys whose values are free-form mappings: what follows them is not in the schema
FREE = ("backbone_args", "augment", "algorithm_params", "imbalance_params")


def _key_known(path: list[str], known: set[str]) -> bool:
    """``path`` (config keys; a name or a ``<placeholder>`` at a level of names of the user's
    choice) is a key of the schema, from the top level or from a task's entry. What follows a
    free-form mapping (``backbone_args``, ``algorithm_params.<name>``) is not checked."""
    for i, part in enumerate(path):
        if part in FREE:
            path = path[: i + 1]
            break
    text = ".".join(path)
    prefixes = {".".join(k.split(".")[:n]) for k in known for n in range(1, k.count(".") + 2)}
    for key in prefixes:
        pattern = re.escape(key).replace(re.escape("<name>"), r"[^.]+")
        if re.fullmatch(pattern, text) or re.fullmatch(pattern, f"tasks.x.{text}"):
            return True
    return False


def _yaml_key_paths(node: object, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = [*prefix, str(key)]
            out.append(path)
            if str(key) not in FREE:
                out.extend(_yaml_key_paths(value, tuple(path)))
    return out


def test_every_config_key_in_the_docs_is_in_the_schema():
    known = _schema_paths()
    assert "tasks.<name>.train.iterations" in known
    bad = []
    for page, block in _blocks("yaml"):
        data = yaml.safe_load(block)
        for path in _yaml_key_paths(data):
            # top-level keys, then a task's keys under tasks.<name>
            if not _key_known(path, known) and not (path[0] == "tasks" and len(path) == 2):
                bad.append(f"{page.name}: {'.'.join(path)}")
    dotted = re.compile(r"^([a-z_]+(?:\.(?:[a-z0-9_]+|<[a-z_ ]+>))+)(?::.*)?$")
    tops = {p.split(".")[0] for p in known} | {p.split(".")[2] for p in known
                                                if p.startswith("tasks.<name>.")}
    for page, span in _spans():
        m = dotted.match(span)
        if not m or "/" in span or m.group(1).split(".")[0] not in tops:
            continue
        if m.group(1).endswith((".py", ".yaml", ".md", ".json", ".csv")):
            continue
        if not _key_known(m.group(1).split("."), known):
            bad.append(f"{page.name}: {m.group(1)}")
    assert not bad, "config keys the schema does not have:\n" + "\n".join(bad)


def _commands() -> list[tuple[Path, str]]:
    lines = [(p, line) for p, block in _blocks(("bash", "")) for line in block.splitlines()]
    lines += _spans()
    return [(p, line.split("#", 1)[0].strip()) for p, line in lines]


def test_every_semibench_command_and_option_exists():
    commands = docs.cli_commands()
    assert {"list", "check-config", "plan", "predict", "evaluate", "report"} <= set(commands)
    bad, seen = [], 0
    for page, line in _commands():
        for m in re.finditer(r"(?:^|\s)semibench ([a-z][a-z-]*)((?:\s+[^|;&]*)?)", line):
            name, rest = m.group(1), m.group(2)
            if name not in commands:
                bad.append(f"{page.name}: semibench {name}")
                continue
            seen += 1
            bad += [f"{page.name}: semibench {name} {opt}"
                    for opt in re.findall(r"(?<!\S)(--?[a-zA-Z][\w-]*)", rest)
                    if opt not in commands[name]]
    assert seen >= 10 and not bad, "\n".join(bad)


def test_every_make_target_exists():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    used = {m.group(1) for _, line in _commands()
            for m in re.finditer(r"(?:^|\s|`)make ([a-z][\w-]*)", line)}
    assert {"benchmark", "test", "docs", "readme"} <= used
    assert used <= targets, used - targets


def test_every_repository_path_exists():
    roots = ("config/", "profiles/", "examples/", "workflow/", "benchmarks/", "src/", "tests/",
             "requirements/", "envs/", "docs/")
    words = [w for _, span in _spans() for w in span.split()]
    words += [w for _, block in _blocks(("bash", "", "yaml")) for w in re.split(r"[\s,\[\]]+",
                                                                                  block)]
    ignored = set((REPO / ".gitignore").read_text(encoding="utf-8").split())  # outputs
    missing = set()
    for word in words:
        word = word.strip("\"'`,;:()")
        placeholder = re.search(r"[<>*{}$]|\.\.\.", word)
        if (word.startswith(roots) and not placeholder and not (REPO / word).exists()
                and word.rstrip("/") + "/" not in ignored):
            missing.add(word)
    assert not missing, sorted(missing)


def test_registered_names_in_the_docs_exist():
    """Every name in a ``semibench list --params NAME`` or an ``algorithms: [...]`` list of a
    page is a registered algorithm, a composition or the example plugin."""
    from semibench.algorithms import ALGORITHMS
    from semibench.imbalance import IMBALANCE

    known = set(ALGORITHMS.names()) | set(IMBALANCE.names()) | {"confmatch", "all"}
    known |= {f"{a}_{m}" for a in ALGORITHMS.names() for m in IMBALANCE.names()}
    bad = []
    for page, block in _blocks("yaml"):
        data = yaml.safe_load(block) or {}
        lists = [data.get("algorithms")] + [t.get("algorithms") for t in
                                            (data.get("tasks") or {}).values()
                                            if isinstance(t, dict)]
        for names in lists:
            if isinstance(names, list):
                bad += [f"{page.name}: {n}" for n in names if n not in known]
    for page, line in _commands():
        bad += [f"{page.name}: {n}" for n in re.findall(r"--params ([a-z0-9_]+)", line)
                if n not in known]
    assert not bad, bad
    assert json.dumps(sorted(known))  # the registries load


def test_python_api_and_environment_variables_exist():
    import semibench

    api = {m for _, block in _blocks("python") for m in re.findall(r"semibench\.(\w+)\(", block)}
    assert "load_run" in api
    assert all(hasattr(semibench, name) for name in api), api
    source = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "src").rglob("*.py"))
    named = {v for text in TEXTS.values() for v in re.findall(r"SEMIBENCH_[A-Z_]+", text)}
    assert named and all(v in source for v in named), named - set(re.findall(
        r"SEMIBENCH_[A-Z_]+", source))


def test_modules_named_on_the_deviations_page_exist():
    """Each entry ends with the modules that hold its details, in italics:
    ``*tasks/cifar, svhn*``; a module that was renamed or removed fails here (a package may
    move: ``tasks/cifar`` is any ``.../tasks/cifar.py`` of the package)."""
    text = (REPO / "docs/deviations.md").read_text(encoding="utf-8")
    groups = re.findall(r"(?<!\*)\*([a-z_]+/[a-z_0-9]+(?:, (?:[a-z_]+/)?[a-z_0-9]+)*)\*", text)
    files = {p.relative_to(REPO / "src").as_posix() for p in (REPO / "src").rglob("*.py")}
    missing, count = [], 0
    for group in groups:
        package = ""
        for item in group.split(", "):
            package, name = item.split("/") if "/" in item else (package, item)
            count += 1
            if not any(f.endswith(f"/{package}/{name}.py") for f in files):
                missing.append(f"{package}/{name}")
    assert count > 30 and not missing, missing


def test_configuration_page_names_every_top_level_and_task_key():
    """The hand-written overview stays complete when the schema grows."""
    text = (REPO / "docs/reference/configuration.md").read_text(encoding="utf-8")
    schema = docs.load_schema(REPO)
    task_keys = schema["properties"]["tasks"]["additionalProperties"]["properties"]
    missing = [k for k in [*schema["properties"], *task_keys] if f"`{k}`" not in text]
    assert not missing, missing
