"""``semibench list``, ``check-config`` and ``plan``: what is registered, and what a config
asks for before anything runs."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Collection
from pathlib import Path

from semibench.config_file import ConfigFileError, read_yaml

logger = logging.getLogger(__name__)
Subparsers = argparse._SubParsersAction


def add_list_registered(sub: Subparsers) -> None:
    p = sub.add_parser("list", help="registered tasks, algorithms and backbones")
    p.add_argument("--params", metavar="ALGORITHM", default="",
                   help="instead: that algorithm's hyper-parameters (default, allowed, help)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                   help="load this plugin first (repeatable; entry-point plugins always load)")
    p.set_defaults(func=list_registered)


def list_registered(args: argparse.Namespace) -> None:
    from semibench.algorithms import ALGORITHMS
    from semibench.backbones import BACKBONES
    from semibench.plugins import load_plugins
    from semibench.tasks import TASKS, create_task

    load_plugins(args.plugin)
    if args.params:
        _list_params(args.params)
        return

    def origin(registry, name: str) -> str:
        where = registry.origin(name)
        return "" if where.startswith("semibench.") else f"[{where}]"

    tasks = [create_task(name) for name in TASKS]
    print("tasks:")
    print_table([[name, t.domain, f"{t.num_classes} classes", f"labels {list(t.label_budgets)}",
                  f"backbone {t.backbone}", origin(TASKS, name)]
                 for name, t in zip(TASKS, tasks, strict=True)], right={2})
    print("algorithms:")
    print_table([[name, ALGORITHMS.origin(name)] for name in ALGORITHMS])
    from semibench.imbalance import IMBALANCE

    print("imbalance methods (compose as <algorithm>_<method>, e.g. fixmatch_abc):")
    rows = []
    for name in IMBALANCE:
        only = IMBALANCE.get(name).bases
        rows.append([name, IMBALANCE.origin(name),
                     f"(with {', '.join(sorted(only))} only)" if only else ""])
    print_table(rows)
    print("backbones:")
    print_table([[name if name in BACKBONES.names() else f"{name}/<name>",
                  BACKBONES.origin(name)]
                 for name in [*BACKBONES.names(), *BACKBONES.families()]])


def print_table(rows: list[list[str]], right: Collection[int] = ()) -> None:
    """Rows indented by two spaces, each column as wide as its widest cell (a long plugin name
    widens its column instead of pushing its row out of line); ``right``: right-aligned
    columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []
    for row in rows:
        cells = [cell.rjust(w) if i in right else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        print(("  " + "  ".join(cells)).rstrip())


def add_check_config(sub: Subparsers) -> None:
    p = sub.add_parser("check-config", help="validate a benchmark config file")
    p.add_argument("configfile")
    _add_weights_option(p, "error", "on a machine that will not train, `--weights warn`")
    p.set_defaults(func=check_config)


def _add_weights_option(p: argparse.ArgumentParser, default: str, hint: str) -> None:
    from semibench.weights import WEIGHT_MODES

    p.add_argument("--weights", choices=WEIGHT_MODES, default=default,
                   help=f"missing pretrained weights (looked up on disk, never downloaded): "
                   f"error (one line listing every file and where it goes), warn (a line each) "
                   f"or skip (default: {default}; {hint})")


def check_config(args: argparse.Namespace) -> None:
    from semibench.config import ConfigError, run_grid
    from semibench.config_file import check_config_file

    prog = "semibench check-config"
    path = Path(args.configfile)
    try:
        config, loaded = check_config_file(path, weights=args.weights)
    except ConfigError as err:
        raise SystemExit(f"{prog}: error: {path}: {err}") from None
    except ConfigFileError as err:
        raise SystemExit(file_error(err, prog)) from None
    named = " (from the file's name)" if loaded.named_by_file else ""
    print(f"{args.configfile}: valid; {len(run_grid(config))} training runs; benchmark "
          f"{config['benchmark']}{named}: reports/{config['benchmark']}/index.html")


def add_plan(sub: Subparsers) -> None:
    p = sub.add_parser("plan", help="FLOPs per step, time per job and device-hours of a config, "
                       "before anything runs")
    p.add_argument("--configfile", required=True)
    p.add_argument("--device", required=True,
                   help="cpu, h200, h100, a100, l40s or v100 (times from the calibration table, "
                   "else the datasheet peak x a stated efficiency, marked uncalibrated)")
    p.add_argument("--amp", default=None, help="none, bf16 or fp16 (default: the config's)")
    p.add_argument("--compile", default=None,
                   help="none, default or reduce-overhead (default: the config's)")
    p.add_argument("--algorithms", nargs="+", default=None,
                   help="plan only these algorithms (e.g. fixmatch)")
    p.add_argument("--calibration", default=None,
                   help="a calibration CSV (default: the one shipped in the package)")
    p.add_argument("--prepared-root", default="data/prepared",
                   help="where prepared data give the evaluation set sizes (meta.json) and "
                   "the texts' token lengths")
    p.add_argument("--results", default="results",
                   help="finished runs of the config here (and Snakemake's benchmark files in "
                   "logs/ beside it) are set next to the plan: measured / planned time")
    p.add_argument("--jobs-csv", default=None, help="write one row per job here")
    p.add_argument("--json", default=None, help="write the whole plan as JSON here")
    _add_weights_option(p, "warn", "a plan is often made where nothing trains")
    p.set_defaults(func=plan)


def plan(args: argparse.Namespace) -> None:
    from semibench.config import ConfigError
    from semibench.config_file import check_config_file
    from semibench.plan import PlanError, as_dict, format_plan, jobs_csv, make_plan
    from semibench.plan.measured import attach_measured

    prog = "semibench plan"
    path = Path(args.configfile)
    try:
        config, _ = check_config_file(path, weights=args.weights)
        plan = make_plan(config, args.device.lower(), amp=args.amp, compile_mode=args.compile,
                         algorithms=args.algorithms, calibration=args.calibration,
                         prepared_root=Path(args.prepared_root) if args.prepared_root else None)
    except (ConfigError, PlanError) as err:
        raise SystemExit(f"{prog}: error: {path}: {err}") from None
    except ConfigFileError as err:
        raise SystemExit(file_error(err, prog)) from None
    if args.results:
        attach_measured(plan, config["benchmark"], Path(args.results))
    print(format_plan(plan))
    if args.jobs_csv:
        jobs_csv(plan, args.jobs_csv)
    if args.json:
        Path(args.json).write_text(json.dumps(as_dict(plan), indent=1) + "\n", encoding="utf-8")


def _list_params(algorithm: str) -> None:
    """One algorithm's hyper-parameters: name, default, allowed values, help."""
    from semibench.algorithms.base import param_table
    from semibench.imbalance import IMBALANCE
    from semibench.registry import UnknownNameError

    section = "imbalance_params" if algorithm in IMBALANCE else "algorithm_params"
    try:
        rows = param_table(algorithm, IMBALANCE if algorithm in IMBALANCE else None)
    except UnknownNameError as err:
        raise SystemExit(f"semibench list: error: {err}") from None
    if not rows:
        print(f"{algorithm}: no hyper-parameters")
        return
    print(f"{section}.{algorithm} (default; per-domain defaults in parentheses):")
    width = {k: max(len(r[k]) for r in rows) for k in ("name", "default", "allowed")}
    for r in rows:
        print(f"  {r['name']:<{width['name']}}  {r['default']:<{width['default']}}  "
              f"{r['allowed']:<{width['allowed']}}  {r['help']}")


def file_error(err: ConfigFileError, prog: str) -> str:
    """A config file's error as the command prints it: ``FILE:LINE: ...`` as compilers write it
    (editors jump to it), else after the command's name."""
    return str(err) if err.line is not None else f"{prog}: error: {err}"


def load_yaml(path: Path, prog: str) -> object:
    """The strict YAML in ``path`` (semibench.config_file: a key given twice is an error); an
    unreadable file, a syntax error or a duplicate key is one line, not a traceback."""
    try:
        return read_yaml(path)
    except ConfigFileError as err:
        raise SystemExit(file_error(err, prog)) from None


COMMANDS = [add_list_registered, add_check_config, add_plan]
