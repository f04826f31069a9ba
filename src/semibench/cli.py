"""The ``semibench`` command: one subcommand per pipeline step, called by the Snakemake rules."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


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
    print(f"{args.task}: {info['num_texts']} texts, method {info['method']}", file=sys.stderr)


def _split(args: argparse.Namespace) -> None:
    from semibench.splits import make_split, write_split
    from semibench.tasks import create_task, load_prepared

    task = create_task(args.task)
    data = load_prepared(args.prepared)
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
                        backtranslations=Path(args.backtranslations) if args.backtranslations else None)
    best, last = metrics["best"], metrics["last"]
    print(
        f"{run['task']}/{run['num_labels']}/{run['algorithm']}/seed{run['seed']}: "
        f"test error {best['test_error']:.2f}% (best on validation, it {best['iteration']}), "
        f"{last['test_error']:.2f}% (last); {metrics['wall_time_s']:.0f} s on {metrics['device']}",
        file=sys.stderr,
    )


def _aggregate(args: argparse.Namespace) -> None:
    from semibench.report.aggregate import collect_runs, write_tables

    write_tables(collect_runs([Path(p) for p in args.metrics]), Path(args.out_dir),
                 published=args.published)


def _figures(args: argparse.Namespace) -> None:
    import pandas as pd

    from semibench.report.figures import write_figures

    runs = pd.read_csv(args.runs)
    curves = {
        (r.task, int(r.num_labels), r.algorithm, int(r.seed)): Path(r.metrics_path).with_name(
            "curve.csv"
        )
        for r in runs.itertuples()
    }
    write_figures(runs, curves, Path(args.out_dir))


def _report(args: argparse.Namespace) -> None:
    import pandas as pd

    from semibench.report.html import write_html

    config = json.loads(args.config_json) if args.config_json else None
    figures = sorted(Path(args.figures_dir).glob("*.png"))
    write_html(pd.read_csv(args.runs), Path(args.summary_md), figures, Path(args.out),
               title=args.title, config=config, published=args.published)


def _list(args: argparse.Namespace) -> None:
    from semibench.algorithms import ALGORITHMS
    from semibench.backbones import BACKBONES
    from semibench.tasks import TASKS, create_task

    print("tasks:")
    for name in TASKS:
        t = create_task(name)
        print(f"  {name:<12} {t.domain:<6} {t.num_classes:>3} classes  labels {list(t.label_budgets)}"
              f"  backbone {t.backbone}")
    print("algorithms:", ", ".join(ALGORITHMS.names()))
    print("backbones:", ", ".join(BACKBONES.names()))


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
    p.set_defaults(func=_split)

    p = sub.add_parser("train", help="train one (task, num_labels, algorithm, seed) run")
    p.add_argument("--run-config", required=True, help="the resolved run settings, as JSON")
    p.add_argument("--prepared", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backtranslations", default="",
                   help="back-translation table of a text task (from `semibench backtranslate`)")
    p.set_defaults(func=_train)

    p = sub.add_parser("aggregate", help="tables of every run's metrics")
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--published", nargs="*", default=[], metavar="TABLE",
                   help="USB result tables to compare with: usb_cv, usb_nlp, usb_audio, classic_cv")
    p.set_defaults(func=_aggregate)

    p = sub.add_parser("figures", help="one figure per task")
    p.add_argument("--runs", required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=_figures)

    p = sub.add_parser("report", help="the self-contained HTML report")
    p.add_argument("--runs", required=True)
    p.add_argument("--summary-md", required=True)
    p.add_argument("--figures-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="SemiBench report")
    p.add_argument("--config-json", default=None, help="the benchmark config, shown in the report")
    p.add_argument("--published", nargs="*", default=[], metavar="TABLE",
                   help="USB result tables to compare with: usb_cv, usb_nlp, usb_audio, classic_cv")
    p.set_defaults(func=_report)

    p = sub.add_parser("list", help="registered tasks, algorithms and backbones")
    p.set_defaults(func=_list)

    p = sub.add_parser("check-config", help="validate a benchmark config file")
    p.add_argument("configfile")
    p.set_defaults(func=_check_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import errno

    from semibench.config import ConfigError
    from semibench.io import ChecksumError, DirectoryBusyError, UnsafeArchiveError
    from semibench.tasks import PreparedDataError
    from semibench.train.loop import DeviceUnavailableError, NonFiniteLossError, TrainingStopped

    # faults of the inputs or the machine: one line that says what to do, not a traceback
    one_line = (ConfigError, NonFiniteLossError, DeviceUnavailableError, PreparedDataError,
                ChecksumError, DirectoryBusyError, UnsafeArchiveError)
    try:
        args.func(args)
    except TrainingStopped as err:
        print(f"semibench {args.command}: {err}", file=sys.stderr)
        return 128 + 15  # as if killed by SIGTERM: the scheduler retries, the retry resumes
    except one_line as err:
        print(f"semibench {args.command}: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        message = err.strerror or str(err)
        if err.filename and str(err.filename) not in message:
            message += f" ({err.filename})"
        print(f"semibench {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
