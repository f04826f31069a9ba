"""The ``semibench`` command: one subcommand per pipeline step, called by the Snakemake rules."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def _fetch(args: argparse.Namespace) -> None:
    from semibench.tasks import create_task

    create_task(args.task).fetch(Path(args.raw_dir))


def _prepare(args: argparse.Namespace) -> None:
    from semibench.tasks import create_task

    create_task(args.task).prepare(Path(args.raw_dir), Path(args.out_dir))


def _backtranslate(args: argparse.Namespace) -> None:
    from semibench.backtranslate import ModelsUnavailableError, Settings, backtranslate_task

    settings = Settings(languages=tuple(args.languages), batch_size=args.batch_size,
                        max_chars=args.max_chars, seed=args.seed)
    try:
        info = backtranslate_task(
            args.prepared, args.out_dir, task=args.task, settings=settings,
            weights_dir=args.weights_dir or None, cache_dir=args.cache_dir or None,
            offline=args.offline, device=args.device, fallback=args.fallback,
        )
    except ModelsUnavailableError as err:
        raise SystemExit(f"semibench backtranslate: error: {err}\n(with --fallback token-edit "
                         "the strong text view is the token-edit stand-in instead)") from None
    logger.info("%s: %d texts, method %s", args.task, info["num_texts"], info["method"])


def _split(args: argparse.Namespace) -> None:
    from semibench.splits import make_split, write_split
    from semibench.tasks import create_task, load_prepared

    task = create_task(args.task)
    data = load_prepared(args.prepared)
    if args.long_tailed:  # a long-tailed rule over the same prepared data
        from semibench.splits_lt import make_long_tailed_split, parse_tag

        write_split(make_long_tailed_split(
            data.train_y, task=args.task, num_classes=data.meta["num_classes"],
            num_labels=args.num_labels, setting=parse_tag(args.long_tailed),
            val_per_class=task.val_per_class, seed=args.seed,
            validation_source=task.validation_source), args.out)
        return
    split = make_split(
        data.train_y,
        task=args.task,
        num_classes=data.meta["num_classes"],
        num_labels=args.num_labels,
        val_per_class=task.val_per_class,
        seed=args.seed,
        validation_source=task.validation_source,
        fixed_labelled=task.fixed_labelled,
    )
    write_split(split, args.out)


def _train(args: argparse.Namespace) -> None:
    import torch

    from semibench.train.loop import train_run

    torch.set_num_threads(args.threads)
    run = json.loads(args.run_config)
    metrics = train_run(run, Path(args.prepared), Path(args.split), Path(args.out_dir),
                        backtranslations=Path(args.backtranslations) if args.backtranslations else None,
                        jobs_per_gpu=args.jobs_per_gpu,
                        early_signals=getattr(args, "early_signals", None))
    best, last = metrics["best"], metrics["last"]
    logger.info(
        f"{run['task']}/{run['num_labels']}/{run['algorithm']}/seed{run['seed']}: "
        f"test error {best['test_error']:.2f}% (best on validation, it {best['iteration']}), "
        f"{last['test_error']:.2f}% (last); {metrics['wall_time_s']:.0f} s on {metrics['device']}"
    )


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


def _aggregate(args: argparse.Namespace) -> None:
    from semibench.report.aggregate import collect
    from semibench.report.tables import write_tables

    results = collect(args.metrics, args.curves, args.benchmarks)
    write_tables(results.runs, Path(args.out_dir), published=args.published,
                 grid=_expected(args), curves=results.curves, per_class=results.per_class,
                 title=args.title, metrics=args.show_metrics, tasks=_task_settings(args))


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


def _figures(args: argparse.Namespace) -> None:
    import pandas as pd

    from semibench.report.figures import write_figures
    from semibench.report.tables import build

    runs, grid = _read_tables(args)
    data = build(runs, grid)
    write_figures(runs, pd.read_csv(args.curves), pd.read_csv(args.per_class),
                  Path(args.out_dir), grid=grid, statistics=data.statistics,
                  cd_groups=args.cd_groups)


def _report(args: argparse.Namespace) -> None:
    if args.partial:
        from semibench.config import ConfigError, check_config
        from semibench.report.partial import partial_report

        prog = "semibench report --partial"
        if not args.configfile:
            raise SystemExit(f"{prog}: error: --configfile is required")
        path = Path(args.configfile)
        try:
            config = check_config(_load_yaml(path, prog))
        except ConfigError as err:
            raise SystemExit(f"{prog}: error: {path}: {err}") from None
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


def _predict(args: argparse.Namespace) -> None:
    from semibench.inference import load_run, predict_files, predictions_csv
    from semibench.io import atomic_write_text

    run = load_run(args.run, args.checkpoint, args.device)
    text = predictions_csv(predict_files(run, args.input, top_k=args.top_k))
    if args.output:
        atomic_write_text(Path(args.output), text)
        logger.info("semibench predict: wrote %d predictions to %s", text.count("\n") - 1,
                    args.output)
    else:
        sys.stdout.write(text)


def _evaluate(args: argparse.Namespace) -> None:
    import torch

    from semibench.inference import evaluate_run, read_run_metrics, trained_task
    from semibench.io import atomic_write_json

    metrics = read_run_metrics(args.run)
    task = args.task or trained_task(metrics)  # a variant's run: its registered task's data
    # the trainer's thread count: CPU float sums then add up in the same order
    torch.set_num_threads(args.threads or int(metrics.get("threads") or 1))
    data = Path(args.data) if args.data else Path("data/prepared") / task
    evaluations, not_comparable = evaluate_run(args.run, data, task, args.checkpoint,
                                               args.device)
    report = {"run": str(args.run), "task": task, "data": str(data),
              "comparable": not not_comparable, "why_not_comparable": not_comparable,
              **{e.checkpoint: {**e.fields, "differs_from_metrics_json": e.differences}
                 for e in evaluations}}
    if args.output:
        atomic_write_json(Path(args.output), report)
    for e in evaluations:
        top5 = e.fields["test_top5_error"]
        state = ("n/a" if not_comparable else "reproduces metrics.json" if not e.differences
                 else f"DIFFERS from metrics.json in {', '.join(e.differences)}")
        print(f"{e.checkpoint}: test error {e.fields['test_error']:.2f}%, top-5 error "
              f"{'n/a' if top5 is None else f'{top5:.2f}%'}, balanced error "
              f"{e.fields['test_balanced_error']:.2f}%, macro-F1 "
              f"{e.fields['test_macro_f1']:.2f}%: {state}")
    if not_comparable:
        logger.info("semibench evaluate: not compared with metrics.json: %s", not_comparable)
    elif any(e.differences for e in evaluations):
        raise SystemExit("semibench evaluate: error: the checkpoint does not reproduce "
                         f"{Path(args.run) / 'metrics.json'}")


def _list(args: argparse.Namespace) -> None:
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


def _load_yaml(path: Path, prog: str) -> object:
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


def _check_config(args: argparse.Namespace) -> None:
    from semibench.config import ConfigError, check_config, run_grid

    prog = "semibench check-config"
    path = Path(args.configfile)
    try:
        config = check_config(_load_yaml(path, prog))
    except ConfigError as err:
        raise SystemExit(f"{prog}: error: {path}: {err}") from None
    print(f"{args.configfile}: valid; {len(run_grid(config))} training runs")


def _plan(args: argparse.Namespace) -> None:
    from semibench.config import ConfigError, check_config
    from semibench.plan import PlanError, as_dict, format_plan, jobs_csv, make_plan

    prog = "semibench plan"
    path = Path(args.configfile)
    try:
        config = check_config(_load_yaml(path, prog))
        plan = make_plan(config, args.device.lower(), amp=args.amp, compile_mode=args.compile,
                         algorithms=args.algorithms, calibration=args.calibration,
                         prepared_root=Path(args.prepared_root) if args.prepared_root else None)
    except (ConfigError, PlanError) as err:
        raise SystemExit(f"{prog}: error: {path}: {err}") from None
    print(format_plan(plan))
    if args.jobs_csv:
        jobs_csv(plan, args.jobs_csv)
    if args.json:
        Path(args.json).write_text(json.dumps(as_dict(plan), indent=1) + "\n", encoding="utf-8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="semibench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fetch", help="put a task's verified source files into a raw directory")
    p.add_argument("--task", required=True)
    p.add_argument("--raw-dir", required=True)
    p.set_defaults(func=_fetch)

    p = sub.add_parser("prepare", help="convert raw files into the prepared format")
    p.add_argument("--task", required=True)
    p.add_argument("--raw-dir", required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=_prepare)

    p = sub.add_parser("backtranslate", help="back-translate a text task's training texts "
                       "(USB's strong text view) with MarianMT")
    p.add_argument("--task", required=True)
    p.add_argument("--prepared", required=True, help="the task's prepared directory")
    p.add_argument("--out-dir", required=True, help="where backtranslations.npz goes")
    p.add_argument("--weights-dir", default="",
                   help="directory holding <weights-dir>/Helsinki-NLP/opus-mt-*; default: the "
                   "Hugging Face hub cache")
    p.add_argument("--cache-dir", default="", help="Hugging Face hub cache directory")
    p.add_argument("--offline", action="store_true",
                   help="never download (also when HF_HUB_OFFLINE=1)")
    p.add_argument("--fallback", choices=["none", "token-edit"], default="none",
                   help="if the models are unavailable: fail (none) or record that the "
                   "token-edit stand-in is used (token-edit)")
    p.add_argument("--languages", nargs="+", default=["de", "ru"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-chars", type=int, default=1024,
                   help="translate the last N characters of each text (USB: 1024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.set_defaults(func=_backtranslate)

    p = sub.add_parser("split", help="labelled/unlabelled/validation split for one seed")
    p.add_argument("--task", required=True)
    p.add_argument("--prepared", required=True)
    p.add_argument("--num-labels", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--long-tailed", default="",
                   help="a long-tailed split, by its tag (e.g. lt_l100_u100_m3000; "
                        "semibench.splits_lt); num-labels is then N1, the head count")
    p.set_defaults(func=_split)

    p = sub.add_parser("train", help="train one (task, num_labels, algorithm, seed) run")
    p.add_argument("--run-config", required=True, help="the resolved run settings, as JSON")
    p.add_argument("--prepared", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jobs-per-gpu", type=int, default=1,
                   help="training jobs that share one GPU (job packing)")
    p.add_argument("--backtranslations", default="",
                   help="back-translation table of a text task (from `semibench backtranslate`)")
    p.set_defaults(func=_train)

    published = dict(nargs="*", default=[], metavar="TABLE",
                     help="USB result tables to compare with: usb_cv, usb_nlp, usb_audio, "
                     "classic_cv, classic_cv_imb, classic_cv_imb_strong, classic_cv_imb_reversed")
    grid_json = dict(default="", help='the configured runs as JSON: {"domains": {task: domain}, '
                     '"runs": [[task, num_labels, algorithm, seed], ...], optionally "tasks": '
                     '{task: {"base": registered task, "long_tailed": section or null}}}; the '
                     'report says "n of N runs" and marks what is missing, and matches USB\'s '
                     'published rows by registered task and long-tailed setting')
    p = sub.add_parser("aggregate", help="every table of the report, from the runs' files")
    p.add_argument("--metrics", nargs="*", default=[], help="the runs' metrics.json files")
    p.add_argument("--curves", nargs="*", default=[],
                   help="their curve.csv files, in the same order")
    p.add_argument("--benchmarks", nargs="*", default=[],
                   help="the Snakemake benchmark files of their train jobs, in the same order")
    p.add_argument("--grid-json", **grid_json)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--published", **published)
    p.add_argument("--title", default="SemiBench results")
    p.add_argument("--show-metrics", nargs="+", default=["error"], metavar="METRIC",
                   choices=["error", "top5_error", "balanced_error", "macro_f1",
                            "gmean_recall", "head_accuracy", "medium_accuracy",
                            "tail_accuracy"],
                   help="the config's `metrics:`: which test metrics get tables (default: error)")
    p.set_defaults(func=_aggregate)

    p = sub.add_parser("figures", help="every figure of the report, from aggregate's tables")
    p.add_argument("--runs", required=True, help="runs.csv")
    p.add_argument("--grid", required=True, help="grid.csv (the configured runs)")
    p.add_argument("--curves", required=True, help="curves.csv")
    p.add_argument("--per-class", required=True, help="per_class.csv")
    p.add_argument("--cd-groups", nargs="*", default=[], metavar="GROUP",
                   help="statistics groups (domains, all) that get a critical-difference "
                   "diagram")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=_figures)

    p = sub.add_parser("report", help="the self-contained HTML report (--partial: of whatever "
                       "has finished, from a config)")
    p.add_argument("--runs", help="runs.csv")
    p.add_argument("--grid", help="grid.csv (the configured runs)")
    p.add_argument("--figures", nargs="*", default=[], help="the PNGs to embed")
    p.add_argument("--out", help="the page to write")
    p.add_argument("--title", default="SemiBench report")
    p.add_argument("--config-json", default=None, help="the benchmark config, shown in the report")
    p.add_argument("--published", **published)
    p.add_argument("--show-metrics", nargs="+", default=["error"], metavar="METRIC",
                   choices=["error", "top5_error", "balanced_error", "macro_f1",
                            "gmean_recall", "head_accuracy", "medium_accuracy",
                            "tail_accuracy"],
                   help="the config's `metrics:`: which test metrics the runs table shows")
    p.add_argument("--partial", action="store_true",
                   help="render the finished runs of --configfile into "
                   "reports/<benchmark>/partial/ (while a sweep runs): 'n of N runs'")
    p.add_argument("--configfile", help="with --partial: the benchmark config")
    p.add_argument("--directory", default=".",
                   help="with --partial: the workflow's working directory (default: .)")
    p.add_argument("--out-dir", default=None,
                   help="with --partial: where to write (default: reports/<benchmark>/partial)")
    p.set_defaults(func=_report)

    p = sub.add_parser("predict", help="predict files with a trained run's model, as CSV "
                       "(input, class, probability)")
    p.add_argument("--run", required=True, help="a finished run directory (has metrics.json)")
    p.add_argument("--input", required=True, nargs="+",
                   help="files or folders: images; audio files; text files (one input a line)")
    p.add_argument("--output", default="", help="the CSV to write (default: standard output)")
    p.add_argument("--top-k", type=int, default=1, help="classes per input (default: 1)")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best",
                   help="best on validation (default) or the last evaluated weights")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.set_defaults(func=_predict)

    p = sub.add_parser("evaluate", help="re-evaluate a run's checkpoints on a task's test set "
                       "and compare with its metrics.json")
    p.add_argument("--run", required=True, help="a finished run directory (has metrics.json)")
    p.add_argument("--task", default="", help="the task whose test set to use (default: the "
                   "run's; a variant's run: its registered task)")
    p.add_argument("--data", default="",
                   help="its prepared directory (default: data/prepared/<task>)")
    p.add_argument("--checkpoint", nargs="+", choices=["best", "last"],
                   default=["best", "last"])
    p.add_argument("--output", default="", help="also write the results here, as JSON")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu; the "
                   "numbers reproduce exactly on the CPU)")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads (default: the run's, as recorded in metrics.json)")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("list", help="registered tasks, algorithms and backbones")
    p.add_argument("--params", metavar="ALGORITHM", default="",
                   help="instead: that algorithm's hyper-parameters (default, allowed, help)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                   help="load this plugin first (repeatable; entry-point plugins always load)")
    p.set_defaults(func=_list)

    p = sub.add_parser("check-config", help="validate a benchmark config file")
    p.add_argument("configfile")
    p.set_defaults(func=_check_config)

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
    p.add_argument("--jobs-csv", default=None, help="write one row per job here")
    p.add_argument("--json", default=None, help="write the whole plan as JSON here")
    p.set_defaults(func=_plan)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        # a SIGTERM while torch is still importing (a busy node, a short time limit) is kept
        # and honoured after the first step, instead of killing the job before it can save
        import signal

        args.early_signals = []
        signal.signal(signal.SIGTERM, lambda signum, _frame: args.early_signals.append(signum))
    import errno

    from semibench.errors import SemiBenchError
    from semibench.log import configure
    from semibench.train.loop import TrainingStopped

    configure()
    try:
        args.func(args)
    except TrainingStopped as err:
        print(f"semibench {args.command}: {err}", file=sys.stderr)
        return 128 + 15  # as if killed by SIGTERM: the scheduler retries, the retry resumes
    except SemiBenchError as err:
        # a fault of the inputs or the machine: one line that says what to do, not a traceback
        print(f"semibench {args.command}: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # a full disk or quota is met, not caused by the code: one line as well
        message = err.strerror or str(err)
        if err.filename and str(err.filename) not in message:
            message += f" ({err.filename})"
        print(f"semibench {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
