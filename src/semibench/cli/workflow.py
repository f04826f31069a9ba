"""``semibench run``: one (task, algorithm) run, or a small sweep, through the Snakemake workflow.

It writes a config derived from a benchmark config (the task's settings, one algorithm, the
seeds asked for, ``--set`` overrides), then asks Snakemake for exactly those runs' files: the
same rules, data, splits and run directories as a whole benchmark, under the benchmark name
``--benchmark`` (default ``run``), so the default benchmark's outputs are never touched.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from semibench.errors import SemiBenchError

Subparsers = argparse._SubParsersAction
REPO = Path(__file__).resolve().parents[3]
DEFAULT_CONFIG = REPO / "config" / "config.yaml"
#: where a derived config goes when the base config's folder is read-only
RUN_CONFIGS = Path(".snakemake") / "semibench" / "run"


class RunCommandError(SemiBenchError):
    """A ``semibench run`` request that cannot become a config (a bad ``--set``, a task the
    base config cannot give)."""


def add_run(sub: Subparsers) -> None:
    p = sub.add_parser(
        "run", help="train one task x algorithm (or a sweep of it) through the workflow",
        description="Train TASK with ALGORITHM through the Snakemake workflow: the same data, "
        "splits and files as a benchmark, without writing a config. A list value in --set "
        "(e.g. algorithm_params.fixmatch.p_cutoff=[0.9,0.95]) is a sweep: one run per value.")
    p.add_argument("task", help="a task of the config, or any registered task")
    p.add_argument("algorithm", help="a registered algorithm, or <algorithm>_<imbalance method>")
    p.add_argument("--config", default=str(DEFAULT_CONFIG),
                   help="the benchmark config whose settings the run takes (default: the "
                   "offline default, config/config.yaml)")
    p.add_argument("--seed", type=int, nargs="+", default=[0], help="seeds (default: 0)")
    p.add_argument("--num-labels", type=int, nargs="+", default=None,
                   help="label budgets (default: the task's first in the config)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                   help="override a config key, dotted (train.iterations=200, "
                   "tasks.mnist.train.lr=0.01, algorithm_params.fixmatch.p_cutoff=[0.9,0.95]); "
                   "VALUE is read as YAML; repeatable")
    p.add_argument("--benchmark", default="run",
                   help="the benchmark name the runs are filed under: results/<benchmark>/ "
                   "(default: run)")
    p.add_argument("--report", action="store_true",
                   help="also build the report of these runs (reports/<benchmark>/index.html)")
    p.add_argument("--cores", default="all", help="Snakemake's --cores (default: all)")
    p.add_argument("-n", "--dry-run", action="store_true", help="show the jobs, run nothing")
    p.add_argument("--snakemake-args", default="", metavar="ARGS",
                   help="more Snakemake options, quoted as one (e.g. \"--profile profiles/slurm\")")
    p.set_defaults(func=run)


def _assign(config: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    where = config
    for i, part in enumerate(parts[:-1]):
        nxt = where.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise RunCommandError(f"--set {key}: {'.'.join(parts[:i + 1])} is not a mapping")
        where = nxt
    where[parts[-1]] = value


def parse_sets(sets: list[str]) -> list[tuple[str, Any]]:
    """``KEY=VALUE`` pairs, each VALUE read as YAML (``[0.9, 0.95]`` is a list: a sweep)."""
    import yaml

    out = []
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not p for p in key.split(".")):
            raise RunCommandError(f"--set {item!r}: expected KEY=VALUE with a dotted KEY, "
                                  "e.g. train.iterations=200")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            raise RunCommandError(f"--set {item!r}: VALUE is not valid YAML") from None
        out.append((key, value))
    return out


#: keys a task may set itself: ``--set`` puts them on the task (where they win over the top)
TASK_KEYS = frozenset({"train", "algorithm_params", "algorithm_train", "imbalance_params",
                       "num_labels", "backbone", "backbone_args", "augment", "long_tailed"})
#: the path-valued keys of a ``from_files`` declaration
FILE_KEYS = ("train", "test", "unlabelled")


def rebased(config: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """``config`` with its relative file paths (``from_files`` paths, ``.py`` plugins) made
    absolute from ``base_dir``, the base config's folder: the derived config lives elsewhere."""
    import copy

    out = copy.deepcopy(config)

    def absolute(value: Any) -> Any:
        return str((base_dir / value).resolve()) if isinstance(value, str) and value and \
            not Path(value).is_absolute() else value

    out["plugins"] = [absolute(p) if str(p).endswith(".py") else p
                      for p in out.get("plugins") or []] if "plugins" in out else None
    if out["plugins"] is None:
        del out["plugins"]
    for settings in (out.get("tasks") or {}).values():
        declaration = settings.get("from_files") if isinstance(settings, dict) else None
        if isinstance(declaration, dict):
            for key in FILE_KEYS:
                if key in declaration:
                    declaration[key] = absolute(declaration[key])
    return out


def derived_config(base: dict[str, Any], task: str, algorithm: str, seeds: list[int],
                   num_labels: list[int] | None, sets: list[tuple[str, Any]],
                   benchmark: str) -> dict[str, Any]:
    """The config of a ``semibench run``: ``base``'s settings of ``task`` (none for a task it
    does not list: the registered task's defaults), one algorithm, ``seeds``, then ``sets``
    (a key a task may set, e.g. ``train.iterations``, set on the task)."""
    import copy

    config = {k: copy.deepcopy(v) for k, v in base.items()
              if k not in ("tasks", "algorithms", "seeds", "benchmark")}
    settings = copy.deepcopy((base.get("tasks") or {}).get(task) or {})
    settings.pop("algorithms", None)
    if num_labels is not None:
        settings["num_labels"] = list(num_labels)
    elif isinstance(settings.get("num_labels"), list) and settings["num_labels"]:
        settings["num_labels"] = settings["num_labels"][:1]
    config.update(benchmark=benchmark, seeds=list(seeds), algorithms=[algorithm],
                  tasks={task: settings})
    for key, value in sets:  # a task's key goes to the task: its settings win over the top
        head = key.split(".", 1)[0]
        _assign(config, f"tasks.{task}.{key}" if head in TASK_KEYS else key, value)
    return config


def write_derived(config: dict[str, Any], base_dir: Path, benchmark: str, command: str,
                  source: Path) -> Path:
    """Write the derived config beside the config it comes from (``.semibench-run.<benchmark>
    .yaml``), so that its relative paths read the same files and are recorded as written;
    where that folder is read-only, under ``.snakemake/semibench/run/`` with the paths made
    absolute."""
    import json

    import yaml

    header = f"# {command}\n# derived from {source}\n"
    for path, data in ((base_dir / f".semibench-run.{benchmark}.yaml", config),
                       (RUN_CONFIGS / f"{benchmark}.yaml", rebased(config, base_dir))):
        text = header + yaml.safe_dump(json.loads(json.dumps(data)), sort_keys=False)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    raise RunCommandError(f"cannot write the derived config in {base_dir} or {RUN_CONFIGS}")


def run(args: argparse.Namespace) -> None:
    import json

    from semibench.config import ConfigError, check_config, run_grid
    from semibench.config_file import load_config_file
    from semibench.report.layout import REPORT_HTML, RUN_DIR

    prog = "semibench run"
    loaded = load_config_file(args.config)
    config = derived_config(loaded.data, args.task, args.algorithm, args.seed, args.num_labels,
                            parse_sets(args.sets), args.benchmark)
    try:
        checked = check_config(config, base_dir=loaded.base_dir, weights="error")
    except ConfigError as err:
        raise RunCommandError(f"{loaded.path} with {args.task} {args.algorithm}: {err}") from None
    if args.num_labels is None:  # the task's first budget, where the config gave none
        budgets = checked["tasks"][args.task]["num_labels"]
        config["tasks"][args.task]["num_labels"] = budgets[:1]
        checked["tasks"][args.task]["num_labels"] = budgets[:1]
    grid = run_grid(checked)
    configfile = write_derived(config, loaded.base_dir, args.benchmark,
                               f"semibench run {' '.join(map(shlex.quote, sys.argv[2:]))}",
                               loaded.path)
    metrics = [f"{RUN_DIR.format(benchmark=args.benchmark, task=t, num_labels=n, algorithm=a, seed=s)}"
               "/metrics.json" for t, n, a, s in grid]
    targets = [*metrics, *([REPORT_HTML.format(benchmark=args.benchmark)] if args.report else [])]
    extra = shlex.split(args.snakemake_args)
    # the targets first: --configfile takes every word up to the next option
    command = ["snakemake", *targets, "--snakefile", str(REPO / "Snakefile"),
               "--configfile", str(configfile), "--cores", str(args.cores),
               *(["-n"] if args.dry_run else []), *extra]
    print(f"{prog}: {len(grid)} run(s) of {args.task} x {args.algorithm}; config "
          f"{configfile}\n  {' '.join(map(shlex.quote, command))}", file=sys.stderr)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([str(bin_dir / "snakemake") if (bin_dir / "snakemake").exists()
                           else "snakemake", *command[1:]], env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(done.returncode)
    if args.dry_run:
        return
    for target in metrics:
        best = json.loads(Path(target).read_text(encoding="utf-8"))["best"]
        print(f"{target}: test error {best['test_error']:.2f} % at iteration "
              f"{best['iteration']} (best validation)")
    if args.report:
        print(REPORT_HTML.format(benchmark=args.benchmark))


COMMANDS = [add_run]
