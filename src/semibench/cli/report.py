"""``semibench aggregate``, ``figures`` and ``report``: the report, from the runs' files."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from semibench.cli.configs import file_error

logger = logging.getLogger(__name__)
Subparsers = argparse._SubParsersAction

PUBLISHED = dict(nargs="*", default=[], metavar="TABLE",
                 help="USB result tables to compare with: usb_cv, usb_nlp, usb_audio, "
                 "classic_cv, classic_cv_imb, classic_cv_imb_strong, classic_cv_imb_reversed")
GRID_JSON = dict(default="", help='the configured runs as JSON: {"domains": {task: domain}, '
                 '"runs": [[task, num_labels, algorithm, seed], ...], optionally "tasks": '
                 '{task: {"base": registered task, "long_tailed": section or null}}}; the '
                 'report says "n of N runs" and marks what is missing, and matches USB\'s '
                 'published rows by registered task and long-tailed setting')
METRICS = ["error", "top5_error", "balanced_error", "macro_f1", "gmean_recall",
           "head_accuracy", "medium_accuracy", "tail_accuracy"]


INPUTS_FILE = ("a JSON file with any of this command's lists, for lists too long for a "
               "command line (Linux refuses an argument over 128 KiB): ")


def add_aggregate(sub: Subparsers) -> None:
    p = sub.add_parser("aggregate", help="every table of the report, from the runs' files")
    p.add_argument("--metrics", nargs="*", default=[], help="the runs' metrics.json files")
    p.add_argument("--curves", nargs="*", default=[],
                   help="their curve.csv files, in the same order")
    p.add_argument("--benchmarks", nargs="*", default=[],
                   help="the Snakemake benchmark files of their train jobs, in the same order")
    p.add_argument("--inputs-file", metavar="JSON", help=INPUTS_FILE + '{"metrics": [...], '
                   '"curves": [...], "benchmarks": [...]} (added after those given above)')
    p.add_argument("--grid-json", **GRID_JSON)
    p.add_argument("--grid-file", metavar="JSON", help="--grid-json's text, from a file")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--published", **PUBLISHED)
    p.add_argument("--title", default="SemiBench results")
    p.add_argument("--show-metrics", nargs="+", default=["error"], metavar="METRIC",
                   choices=METRICS,
                   help="the config's `metrics:`: which test metrics get tables (default: error)")
    p.set_defaults(func=aggregate)


def aggregate(args: argparse.Namespace) -> None:
    """Every run read once, written as the tasks' parts (``<out-dir>/tasks/<task>/``, as the
    workflow's aggregate_task jobs write them) and merged from those, as its aggregate job
    does."""
    from semibench.report.parts import merge_tasks, write_parts
    from semibench.report.reading import collect

    lists = _inputs(args, ("metrics", "curves", "benchmarks"))
    results = collect(lists["metrics"], lists["curves"], lists["benchmarks"])
    out_dir = Path(args.out_dir)
    parts = write_parts(results, out_dir / "tasks", _expected(args))
    merge_tasks(parts, out_dir, published=args.published, title=args.title,
                metrics=args.show_metrics, tasks=_task_settings(args))


def add_figures(sub: Subparsers) -> None:
    p = sub.add_parser("figures", help="every figure of the report, from aggregate's tables")
    p.add_argument("--runs", required=True, help="runs.csv")
    p.add_argument("--grid", required=True, help="grid.csv (the configured runs)")
    p.add_argument("--curves", required=True, help="curves.csv")
    p.add_argument("--per-class", required=True, help="per_class.csv")
    p.add_argument("--cd-groups", nargs="*", default=[], metavar="GROUP",
                   help="statistics groups (domains, all) that get a critical-difference "
                   "diagram")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=figures)


def figures(args: argparse.Namespace) -> None:
    import pandas as pd

    from semibench.report.figures import write_figures
    from semibench.report.tables import build

    runs, grid = _read_tables(args)
    data = build(runs, grid)
    write_figures(runs, pd.read_csv(args.curves), pd.read_csv(args.per_class),
                  Path(args.out_dir), grid=grid, statistics=data.statistics,
                  cd_groups=args.cd_groups)


def add_report(sub: Subparsers) -> None:
    p = sub.add_parser("report", help="the self-contained HTML report (--partial: of whatever "
                       "has finished, from a config)")
    p.add_argument("--runs", help="runs.csv")
    p.add_argument("--grid", help="grid.csv (the configured runs)")
    p.add_argument("--figures", nargs="*", default=[], help="the PNGs to embed")
    p.add_argument("--inputs-file", metavar="JSON",
                   help=INPUTS_FILE + '{"figures": [...]} (added after --figures)')
    p.add_argument("--out", help="the page to write (the index page, with --pages split)")
    p.add_argument("--title", default="SemiBench report")
    p.add_argument("--config-json", default=None, help="the benchmark config, shown in the report")
    p.add_argument("--config-json-file", metavar="JSON", help="--config-json's text, from a file")
    p.add_argument("--pages", choices=["auto", "one", "split"], default=None,
                   help="one self-contained page, or an index page with a page per task in "
                   "tasks/ and the figures in figures/ beside it (default: the config's "
                   "report.pages, else auto: split above 2,000 runs or 30 tasks)")
    p.add_argument("--published", **PUBLISHED)
    p.add_argument("--show-metrics", nargs="+", default=["error"], metavar="METRIC",
                   choices=METRICS,
                   help="the config's `metrics:`: which test metrics the runs table shows")
    p.add_argument("--partial", action="store_true",
                   help="render the finished runs of --configfile into "
                   "reports/<benchmark>/partial/ (while a sweep runs): 'n of N runs'")
    p.add_argument("--configfile", help="with --partial: the benchmark config")
    p.add_argument("--directory", default=".",
                   help="with --partial: the workflow's working directory (default: .)")
    p.add_argument("--out-dir", default=None,
                   help="with --partial: where to write (default: reports/<benchmark>/partial)")
    p.set_defaults(func=report)


def report(args: argparse.Namespace) -> None:
    if args.partial:
        from semibench.config import ConfigError
        from semibench.config_file import ConfigFileError, check_config_file
        from semibench.report.partial import partial_report

        prog = "semibench report --partial"
        if not args.configfile:
            raise SystemExit(f"{prog}: error: --configfile is required")
        path = Path(args.configfile)
        try:  # the benchmark named as the workflow names it (semibench.config_file)
            config, _ = check_config_file(path)
        except ConfigError as err:
            raise SystemExit(f"{prog}: error: {path}: {err}") from None
        except ConfigFileError as err:
            raise SystemExit(file_error(err, prog)) from None
        page = partial_report(config, Path(args.directory), args.out_dir)
        logger.info("%s: wrote %s", prog, page)
        return
    from semibench.report.html import write_report
    from semibench.report.layout import split_pages
    from semibench.report.parts import read_table
    from semibench.report.tables import build

    missing = [f"--{name}" for name in ("runs", "grid", "out") if not getattr(args, name)]
    if missing:
        raise SystemExit(f"semibench report: error: {', '.join(missing)} required "
                         "(or --partial --configfile CONFIG)")
    from semibench.variants import task_settings

    runs, grid = read_table(args.runs), read_table(args.grid)
    text = (Path(args.config_json_file).read_text(encoding="utf-8") if args.config_json_file
            else args.config_json)
    config = json.loads(text) if text else None
    tasks = task_settings(config) if config else None
    settings = dict((config or {}).get("report") or {})
    if args.pages:
        settings["pages"] = args.pages
    try:
        split = split_pages(len(grid), grid["task"].nunique(), settings)
    except ValueError as err:
        raise SystemExit(f"semibench report: error: {err}") from None
    data = build(runs, grid, args.published, metrics=args.show_metrics, tasks=tasks)
    write_report(data, [Path(f) for f in _inputs(args, ("figures",))["figures"]], args.out,
                 args.title, config, split=split)


def _inputs(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, list[str]]:
    """The lists ``names`` as given on the command line, then those of ``--inputs-file``."""
    lists = {name: list(getattr(args, name)) for name in names}
    if args.inputs_file:
        path = Path(args.inputs_file)
        try:
            given = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise SystemExit(f"semibench {args.command}: error: --inputs-file {path}: "
                             f"{err}") from None
        unknown = set(given) - set(names) if isinstance(given, dict) else {"(not an object)"}
        bad = [k for k in names if not isinstance(given.get(k, []), list)] \
            if isinstance(given, dict) else []
        if unknown or bad:
            raise SystemExit(f"semibench {args.command}: error: --inputs-file {path}: a JSON "
                             f"object of lists of paths: {', '.join(names)} (got "
                             f"{', '.join(sorted(unknown) + bad)})")
        for name in names:
            lists[name] += [str(p) for p in given.get(name, [])]
    return lists


def _grid_spec(args: argparse.Namespace) -> dict | None:
    """``--grid-json`` or the text of ``--grid-file``, parsed."""
    text = (Path(args.grid_file).read_text(encoding="utf-8") if args.grid_file
            else args.grid_json)
    return json.loads(text) if text else None


def _expected(args: argparse.Namespace):
    """The configured runs (``--grid-json``: {"domains": {task: domain}, "runs": [[task,
    num_labels, algorithm, seed], ...]}), or None."""
    from semibench.report.aggregate import grid_frame

    spec = _grid_spec(args)
    return grid_frame(spec["runs"], spec["domains"]) if spec else None


def _task_settings(args: argparse.Namespace):
    """Each task's registered task and long-tailed setting (``--grid-json``'s "tasks", see
    semibench.variants.task_settings), or None."""
    spec = _grid_spec(args)
    return spec.get("tasks") if spec else None


def _read_tables(args: argparse.Namespace):
    from semibench.report.parts import read_table

    return read_table(args.runs), read_table(args.grid)


COMMANDS = [add_aggregate, add_figures, add_report]
