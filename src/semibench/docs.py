"""The documentation's generated parts: the README's results table and the reference pages.

``python -m semibench.docs readme`` (``make readme``) rewrites the part of ``README.md``
between its ``results:start`` and ``results:end`` markers from the ``summary.csv`` of a
finished benchmark (default ``results/offline/tables``). :func:`reference_pages` gives the
pages of the site's reference (configuration schema, registries, hyper-parameters, CLI) as
Markdown; the mkdocs hook ``docs/hooks/reference.py`` adds them at build time, so they are
never committed and never stale.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: the README's results markers; the docs site includes what lies between them (a section of
#: pymdownx.snippets, hence the ``--8<--`` in the comments)
START = "<!-- results:start --8<-- [start:results] -->"
END = "<!-- results:end --8<-- [end:results] -->"
#: the two reference bounds, kept at the table's ends
BOUNDS = ("supervised", "fullysupervised")


# --------------------------------------------------------------------------- README table


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def results_table(summary_csv: Path) -> str:
    """The default benchmark's results as one Markdown table: one row per algorithm, one
    column per (task, label budget), mean ± std of the test error (%) at the checkpoint with
    the lowest validation error, over the seeds of ``summary.csv``."""
    with open(summary_csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{summary_csv}: no runs")
    columns: list[tuple[str, str]] = []
    algorithms: list[str] = []
    cells: dict[tuple[str, tuple[str, str]], str] = {}
    seeds: set[str] = set()
    for r in rows:
        col = (r["task"], r["num_labels"])
        if col not in columns:
            columns.append(col)
        if r["algorithm"] not in algorithms:
            algorithms.append(r["algorithm"])
        mean, std = _number(r["best_test_error_mean"]), _number(r["best_test_error_std"])
        if mean is None:
            continue
        cells[r["algorithm"], col] = f"{mean:.1f}" + (f" ± {std:.1f}" if std is not None else "")
        seeds.add(r["n_seeds"])
    order = ([a for a in algorithms if a == BOUNDS[0]]
             + [a for a in algorithms if a not in BOUNDS]
             + [a for a in algorithms if a == BOUNDS[1]])
    head = "| algorithm | " + " | ".join(f"{t} ({n})" for t, n in columns) + " |"
    lines = [head, "|:---|" + "---:|" * len(columns)]
    for a in order:
        lines.append(f"| {a} | " + " | ".join(cells.get((a, c), "–") for c in columns) + " |")
    n = "/".join(sorted(seeds, key=lambda s: float(s))) or "?"
    spread = " ± std" if any("±" in c for c in cells.values()) else ""
    caption = (f"Test error (%), mean{spread} over {n} seeds, at the checkpoint with the lowest "
               "validation error; column: task (labels; N1 for a long-tailed task); –: not run.")
    return caption + "\n\n" + "\n".join(lines)


def replace_between_markers(text: str, block: str) -> str:
    """``text`` with everything between the results markers replaced by ``block``."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"README needs exactly one {START} followed by one {END}")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{block}\n{END}{after}"


def update_readme(readme: Path, tables: Path) -> None:
    summary = tables / "summary.csv"
    if not summary.is_file():
        raise SystemExit(f"semibench.docs readme: error: {summary}: no such file (run the "
                         "benchmark first: make benchmark)")
    text = readme.read_text(encoding="utf-8")
    try:
        new = replace_between_markers(text, results_table(summary))
    except ValueError as err:
        raise SystemExit(f"semibench.docs readme: error: {readme}: {err}") from None
    if new != text:
        readme.write_text(new, encoding="utf-8")
    print(f"{readme}: results table from {summary}")


# --------------------------------------------------------------------------- reference pages


def _md(text: object) -> str:
    """One table cell: one line, pipes escaped, angle brackets shown as text."""
    text = " ".join(str(text).split()).replace("``", "`")  # reStructuredText literals
    parts = text.replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):  # outside code spans
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _schema_type(node: Mapping[str, Any]) -> str:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name})"
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    if "oneOf" in node:
        return " or ".join(_schema_type(n) for n in node["oneOf"])
    kind = node.get("type", "")
    if kind == "array" and isinstance(node.get("items"), Mapping):
        inner = _schema_type(node["items"])
        return f"list of {inner}" if inner else "list"
    if kind == "object" and isinstance(node.get("additionalProperties"), Mapping):
        inner = _schema_type(node["additionalProperties"])
        return f"name → {inner}" if inner else "mapping"
    bounds = []
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                      ("exclusiveMaximum", "<")):
        if key in node and not (key == "maximum" and node[key] > 1e12):
            bounds.append(f"{sign} {node[key]}")
    return str(kind) + (f" ({', '.join(bounds)})" if bounds else "")


def _children(schema: Mapping[str, Any], node: Mapping[str, Any], expand_refs: bool):
    """(key, child) of an object node; a free-named mapping level is ``<name>``."""
    if "$ref" in node:
        if not expand_refs:
            return []
        node = schema.get("$defs", {})[node["$ref"].rsplit("/", 1)[-1]]
    out = list(node.get("properties", {}).items())
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping) and (extra.get("properties") or "$ref" in extra):
        out.append(("<name>", extra))
    return out


def schema_keys(schema: Mapping[str, Any], node: Mapping[str, Any] | None = None,
                prefix: str = "", expand_refs: bool = True) -> list[tuple[str, Mapping[str, Any]]]:
    """Every key of the config schema as (dotted path, its node), e.g.
    ``tasks.<name>.train.iterations``; ``<name>`` is a name of the user's choice. Without
    ``expand_refs``, a shared definition (``train``) is not walked into."""
    node = schema if node is None else node
    out: list[tuple[str, Mapping[str, Any]]] = []
    for key, child in _children(schema, node, expand_refs):
        path = f"{prefix}{key}"
        if key != "<name>":
            out.append((path, child))
        out.extend(schema_keys(schema, child, path + ".", expand_refs))
    return out


def load_schema(root: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((root / "workflow/schemas/config.schema.yaml").read_text("utf-8"))


def _key_table(rows: list[tuple[str, Mapping[str, Any]]], required: set[str]) -> list[str]:
    lines = ["| key | type | default | description |", "|:---|:---|:---|:---|"]
    for path, node in rows:
        desc = _md(node.get("description", ""))
        if path in required:
            desc = "**required.** " + desc
        default = f"`{json.dumps(node['default'])}`" if "default" in node else ""
        lines.append(f"| `{path}` | {_schema_type(node)} | {default} | {desc} |")
    return lines + [""]


def schema_page(root: Path) -> str:
    schema = load_schema(root)
    keys = schema_keys(schema, expand_refs=False)
    lines = ["# Configuration keys", "",
             "Generated from `workflow/schemas/config.schema.yaml`, the schema every config is "
             "checked against before any job runs (`semibench check-config FILE` checks one "
             "alone). `<name>` stands for a name of your choice (a task, an algorithm). "
             "See [Configuration](configuration.md) for how the keys combine.", "",
             "## Top level", ""]
    lines += _key_table([k for k in keys if not k[0].startswith("tasks.")],
                        set(schema.get("required", [])))
    lines += ["## Per task", "", "Under `tasks.<name>`.", ""]
    lines += _key_table([k for k in keys if k[0].startswith("tasks.")], set())
    for name, node in schema.get("$defs", {}).items():
        lines += [f"## {name}", "", _md(node.get("description", "")), ""]
        sub = schema_keys(schema, node)
        lines += _key_table(sub, set()) if sub else [f"Type: {_schema_type(node)}.", ""]
    return "\n".join(lines)


def _param_rows(name: str, registry: Any = None) -> list[dict[str, str]]:
    from semibench.algorithms.base import param_table

    return param_table(name, registry)


def _param_table(rows: list[dict[str, str]]) -> list[str]:
    if not rows:
        return ["No hyper-parameters.", ""]
    out = ["| parameter | default (per domain) | allowed | meaning |", "|:---|:---|:---|:---|"]
    out += [f"| `{r['name']}` | {_md(r['default'])} | {_md(r['allowed'])} | {_md(r['help'])} |"
            for r in rows]
    return out + [""]


def _summary(obj: Any, first_sentence: bool = False) -> str:
    """The first paragraph (or sentence) of the docstring of the module that defines ``obj``."""
    doc = (sys.modules[obj.__module__].__doc__ if hasattr(obj, "__module__") else None) or ""
    text = " ".join(doc.strip().split("\n\n", 1)[0].split())
    if first_sentence:
        text = re.split(r"(?<=[a-z0-9)])[.:] (?=[A-Z(`])", text, maxsplit=1)[0].rstrip(".") + "."
    return _md(text) if doc.strip() else ""


def algorithms_page() -> str:
    from semibench.algorithms import ALGORITHMS

    lines = ["# Algorithms", "",
             "Generated from the algorithm registry (`semibench list`, `semibench list --params "
             "NAME`). Set a hyper-parameter with `algorithm_params.<algorithm>.<parameter>` "
             "(globally or per task); a per-domain default applies to tasks of that domain.", ""]
    for name in ALGORITHMS:
        alg = ALGORITHMS.get(name)
        lines += [f"## `{name}`", "", _summary(alg), "",
                  f"Views: labelled {', '.join(getattr(alg, 'lb_views', ()) or ('–',))}; "
                  f"unlabelled {', '.join(getattr(alg, 'ulb_views', ()) or ('–',))}.", ""]
        lines += _param_table(_param_rows(name))
    return "\n".join(lines)


def imbalance_page() -> str:
    from semibench.imbalance import IMBALANCE

    lines = ["# Imbalance methods", "",
             "Generated from the imbalance-method registry. A method is composed with a base "
             "algorithm as `<algorithm>_<method>` (e.g. `fixmatch_abc`); its hyper-parameters "
             "are `imbalance_params.<method>.<parameter>`. See "
             "[Algorithms and composition](../concepts/algorithms.md).", ""]
    for name in IMBALANCE:
        method = IMBALANCE.get(name)
        only = getattr(method, "bases", None)
        lines += [f"## `{name}`", "", _summary(method), ""]
        if only:
            lines += [f"Composes with {', '.join(f'`{b}`' for b in sorted(only))} only.", ""]
        lines += _param_table(_param_rows(name, IMBALANCE))
    return "\n".join(lines)


def tasks_page() -> str:
    from semibench.tasks import TASKS, create_task

    lines = ["# Tasks", "",
             "Generated from the task registry (`semibench list`). `num_labels` in a config "
             "must be one of a task's label budgets or another multiple of its number of "
             "classes that fits the pool; a config may also declare tasks of its own "
             "([your own data](../how-to/own-data.md)) and variants of these "
             "([tasks and variants](../concepts/tasks.md)).", "",
             "| task | domain | classes | label budgets | backbone | summary |",
             "|:---|:---|---:|:---|:---|:---|"]
    for name in TASKS:
        t = create_task(name)
        budgets = ", ".join(str(b) for b in t.label_budgets)
        lines.append(f"| `{name}` | {t.domain} | {t.num_classes} | {budgets} | "
                     f"`{t.backbone}` | {_summary(type(t), first_sentence=True)} |")
    return "\n".join(lines) + "\n"


def backbones_page() -> str:
    from semibench.backbones import BACKBONES

    lines = ["# Backbones", "",
             "Generated from the backbone registry (`semibench list`). Choose one with "
             "`backbone:` (per task), pass arguments with `backbone_args:`. The two families "
             "take any model of their library: see [add a backbone](../how-to/add-backbone.md).",
             "", "| backbone | summary |", "|:---|:---|"]
    for name in BACKBONES.names():
        lines.append(f"| `{name}` | {_summary(BACKBONES.get(name))} |")
    for family in BACKBONES.families():
        origin = BACKBONES.origin(family)
        doc = _md((sys.modules[origin].__doc__ or "").strip().split("\n\n", 1)[0])
        lines.append(f"| `{family}/<name>` | {doc} |")
    return "\n".join(lines) + "\n"


def cli_parser() -> argparse.ArgumentParser:
    from semibench.cli import build_parser

    return build_parser()


def cli_commands() -> dict[str, set[str]]:
    """Each ``semibench`` subcommand and the options it takes."""
    parser = cli_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: {s for a in p._actions for s in a.option_strings}
            for name, p in sub.choices.items()}


def _help(parser: argparse.ArgumentParser) -> str:
    """The parser's help at a fixed width (argparse follows $COLUMNS otherwise)."""
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        return parser.format_help().rstrip()
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def cli_page() -> str:
    parser = cli_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    rules = ("fetch", "prepare", "backtranslate", "split", "train", "aggregate", "figures")
    lines = ["# Command line", "",
             "Generated from the `semibench` command's parser. The commands for you come "
             "first; the workflow's rules call the others (" +
             ", ".join(f"`{r}`" for r in rules) + ", and `report`), one job each.", ""]
    order = sorted(sub.choices, key=lambda n: n in rules)  # stable: the parser's order within
    for name in order:
        p = sub.choices[name]
        p.prog = f"semibench {name}"
        lines += [f"## `semibench {name}`", "", _md(helps.get(name, "")), "",
                  "```text", _help(p), "```", ""]
    return "\n".join(lines)


def reference_pages(root: Path) -> dict[str, str]:
    """The generated pages of the site, by their path under ``docs/``."""
    return {"reference/config-keys.md": schema_page(root),
            "reference/tasks.md": tasks_page(),
            "reference/algorithms.md": algorithms_page(),
            "reference/imbalance.md": imbalance_page(),
            "reference/backbones.md": backbones_page(),
            "reference/cli.md": cli_page()}


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m semibench.docs")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("readme", help="rewrite README.md's results table from a finished run")
    p.add_argument("--tables", default="results/offline/tables",
                   help="the benchmark's tables folder (has summary.csv)")
    p.add_argument("--readme", default="README.md")
    p = sub.add_parser("reference", help="write the generated reference pages into a folder")
    p.add_argument("--out-dir", required=True)
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.command == "readme":
        update_readme(Path(args.readme), Path(args.tables))
    else:
        root = Path(__file__).resolve().parents[2]
        for rel, text in reference_pages(root).items():
            out = Path(args.out_dir) / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
            print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
