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


def add_aggregate(sub: Subparsers) -> None:
    p = sub.add_parser("aggregate", help="every table of the report, from the runs' files")
    p.add_argument("--metrics", nargs="*", default=[], help="the runs' metrics.json files")
    p.add_argument("--curves", nargs="*", default=[],
                   help="their curve.csv files, in the same order")
    p.add_argument("--benchmarks", nargs="*", default=[],
                   help="the Snakemake benchmark files of their train jobs, in the same order")
    p.add_argument("--grid-json", **GRID_JSON)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--published", **PUBLISHED)
    p.add_argument("--title", default="SemiBench results")
    p.add_argument("--show-metrics", nargs="+", default=["error"], metavar="METRIC",
                   choices=METRICS,
                   help="the config's `metrics:`: which test metrics get tables (default: error)")
    p.set_defaults(func=aggregate)


def aggregate(args: argparse.Namespace) -> None:
    from semibench.report.aggregate import collect
    from semibench.report.tables import write_tables

    results = collect(args.metrics, args.curves, args.benchmarks)
    write_tables(results.runs, Path(args.out_dir), published=args.published,
                 grid=_expected(args), curves=results.curves, per_class=results.per_class,
                 title=args.title, metrics=args.show_metrics, tasks=_task_settings(args))


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
    p.add_argument("--out", help="the page to write")
    p.add_argument("--title", default="SemiBench report")
    p.add_argument("--config-json", default=None, help="the benchmark config, shown in the report")
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
    from semibench.report.html import render_html
    from semibench.report.tables import build

    missing = [f"--{name}" for name in ("runs", "grid", "out") if not getattr(args, name)]
    if missing:
        raise SystemExit(f"semibench report: error: {', '.join(missing)} required "
                         "(or --partial --configfile CONFIG)")
    from semibench.io import atomic_write_text
    from semibench.variants import task_settings

    runs, grid = _read_tables(args)
    config = json.loads(args.config_json) if args.config_json else None
    tasks = task_settings(config) if config else None
    page = render_html(build(runs, grid, args.published, metrics=args.show_metrics, tasks=tasks),
                       [Path(f) for f in args.figures], args.title, config)
    atomic_write_text(Path(args.out), page)


def _expected(args: argparse.Namespace):
    """The configured runs (``--grid-json``: {"domains": {task: domain}, "runs": [[task,
    num_labels, algorithm, seed], ...]}), or None."""
    from semibench.report.aggregate import grid_frame

    if not args.grid_json:
        return None
    spec = json.loads(args.grid_json)
    return grid_frame(spec["runs"], spec["domains"])


def _task_settings(args: argparse.Namespace):
    """Each task's registered task and long-tailed setting (``--grid-json``'s "tasks", see
    semibench.variants.task_settings), or None."""
    return json.loads(args.grid_json).get("tasks") if args.grid_json else None


def _read_tables(args: argparse.Namespace):
    import pandas as pd

    def read(path: str) -> pd.DataFrame:
        return pd.read_csv(path, keep_default_na=True, dtype={"device": str, "precision": str,
                                                            "text_strong_view": str})

    runs = read(args.runs)
    for column in ("text_strong_view", "precision"):
        if column in runs:
            runs[column] = runs[column].fillna("")
    return runs, read(args.grid)


COMMANDS = [add_aggregate, add_figures, add_report]
