"""``semibench list``, ``check-config`` and ``plan``: what is registered, and what a config
asks for before anything runs."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

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
        return "" if where.startswith("semibench.") else f"  [{where}]"

    print("tasks:")
    for name in TASKS:
        t = create_task(name)
        print(f"  {name:<12} {t.domain:<6} {t.num_classes:>3} classes  labels {list(t.label_budgets)}"
              f"  backbone {t.backbone}{origin(TASKS, name)}")
    print("algorithms:")
    for name in ALGORITHMS:
        print(f"  {name:<16} {ALGORITHMS.origin(name)}")
    from semibench.imbalance import IMBALANCE

    print("imbalance methods (compose as <algorithm>_<method>, e.g. fixmatch_abc):")
    for name in IMBALANCE:
        only = IMBALANCE.get(name).bases
        note = f"  (with {', '.join(sorted(only))} only)" if only else ""
        print(f"  {name:<16} {IMBALANCE.origin(name)}{note}")
    print("backbones:")
    for name in [*BACKBONES.names(), *BACKBONES.families()]:
        shown = name if name in BACKBONES.names() else f"{name}/<name>"
        print(f"  {shown:<24} {BACKBONES.origin(name)}")


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
    from semibench.config import ConfigError, check_config, run_grid

    prog = "semibench check-config"
    path = Path(args.configfile)
    try:
        config = check_config(load_yaml(path, prog), weights=args.weights)
    except ConfigError as err:
        raise SystemExit(f"{prog}: error: {path}: {err}") from None
    print(f"{args.configfile}: valid; {len(run_grid(config))} training runs")


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
    from semibench.config import ConfigError, check_config
    from semibench.plan import PlanError, as_dict, format_plan, jobs_csv, make_plan
    from semibench.plan.measured import attach_measured

    prog = "semibench plan"
    path = Path(args.configfile)
    try:
        config = check_config(load_yaml(path, prog), weights=args.weights)
        plan = make_plan(config, args.device.lower(), amp=args.amp, compile_mode=args.compile,
                         algorithms=args.algorithms, calibration=args.calibration,
                         prepared_root=Path(args.prepared_root) if args.prepared_root else None)
    except (ConfigError, PlanError) as err:
        raise SystemExit(f"{prog}: error: {path}: {err}") from None
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


def load_yaml(path: Path, prog: str) -> object:
    """The YAML in ``path``; an unreadable file or a syntax error is one line (the latter as
    FILE:LINE:COL, as compilers write it), not a traceback."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SystemExit(f"{prog}: error: {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise SystemExit(f"{prog}: error: {path}: cannot read: {reason}") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark, start = err.problem_mark or err.context_mark, err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = err.problem or err.context or "invalid YAML"
        if err.context and start is not None and start is not mark:
            problem += f" ({err.context} at {start.line + 1}:{start.column + 1})"
        raise SystemExit(f"{where}: YAML syntax error: {' '.join(problem.split())}") from None
    except yaml.YAMLError as err:
        raise SystemExit(f"{path}: YAML syntax error: {' '.join(str(err).split())}") from None


COMMANDS = [add_list_registered, add_check_config, add_plan]
