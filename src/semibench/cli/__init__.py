"""The ``semibench`` command: the commands a user runs (check a config, plan it, run it, watch
its sweep, list what is registered, predict and evaluate with a trained run) and the pipeline steps the Snakemake rules
call, one job each.

Each module holds a group of subcommands, every one as its arguments (``add_<command>``) next
to its handler; this module assembles the parser, lists the user's commands before the
pipeline steps in ``semibench --help``, and is the one place where a failure a user can cause
or meet (:class:`semibench.errors.SemiBenchError`) becomes one line.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

from semibench.cli import configs, data, report, runs, status, train, workflow

DESCRIPTION = ("SemiBench: a reproducible semi-supervised learning benchmark (vision, language, "
               "audio), run as a Snakemake pipeline.")
#: the commands for a user, in the order the help lists them (one not registered is left
#: out); every other command is a pipeline step, called by a Snakemake rule
USER_COMMANDS = ("check-config", "plan", "run", "status", "list", "predict", "evaluate")
WIDTH = 79


def version() -> str:
    """The installed distribution's version, else the source tree's."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("semibench")
    except PackageNotFoundError:
        from semibench import __version__

        return __version__


def _listing(title: str, names: list[str], helps: dict[str, str], width: int) -> str:
    lines = [f"{title}:"]
    for name in names:
        lines += textwrap.wrap(helps.get(name, ""), WIDTH, initial_indent=f"  {name:<{width}}  ",
                               subsequent_indent=" " * (width + 4)) or [f"  {name}"]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semibench", usage="%(prog)s [-h] [--version] <command> ...",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.fill("semibench <command> --help shows a command's arguments; the "
                             "whole benchmark runs with: snakemake --cores all", WIDTH))
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    # listed in the description below, grouped, instead of argparse's one flat list
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>",
                                help=argparse.SUPPRESS, prog="semibench")
    for module in (data, train, report, runs, configs, workflow, status):
        for add in module.COMMANDS:
            add(sub)
    helps = {action.dest: action.help or "" for action in sub._choices_actions}
    users = [name for name in USER_COMMANDS if name in sub.choices]
    steps = [name for name in sub.choices if name not in USER_COMMANDS]
    width = max(len(name) for name in sub.choices)
    parser.description = "\n\n".join([
        textwrap.fill(DESCRIPTION, WIDTH), _listing("commands", users, helps, width),
        _listing("pipeline steps (called by the Snakemake rules)", steps, helps, width)])
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

    from semibench.errors import SemiBenchError, TrainingStopped
    from semibench.log import configure

    # only ``train`` stops on a signal; other commands need not import the trainer (seconds:
    # torch.compile's and torchvision's modules), so that e.g. ``status`` answers quickly
    stopped: tuple[type[BaseException], ...] = ()
    if args.command == "train":
        from semibench.train.loop import TrainingStopped

        stopped = (TrainingStopped,)
    configure()
    try:
        args.func(args)
    except stopped as err:
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
