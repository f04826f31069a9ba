"""The ``semibench`` command: one subcommand per pipeline step, called by the Snakemake rules.

Each module holds a group of subcommands, every one as its arguments (``add_<command>``) next
to its handler; this module assembles the parser and is the one place where a failure a user
can cause or meet (:class:`semibench.errors.SemiBenchError`) becomes one line.
"""

from __future__ import annotations

import argparse
import sys

from semibench.cli import configs, data, report, runs, train, workflow


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="semibench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (data, train, report, runs, configs, workflow):
        for add in module.COMMANDS:
            add(sub)
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
