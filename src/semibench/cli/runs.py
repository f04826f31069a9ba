"""``semibench predict`` and ``evaluate``: a trained run's model, on new files or on a test set."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)
Subparsers = argparse._SubParsersAction


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return value


def add_predict(sub: Subparsers) -> None:
    p = sub.add_parser("predict", help="predict files with a trained run's model, as CSV "
                       "(input, class, probability)")
    p.add_argument("--run", required=True, help="a finished run directory (has metrics.json)")
    p.add_argument("--input", required=True, nargs="+",
                   help="files or folders (a folder: its files of the task's kind, recursively): "
                   "images; audio files; text files, one input a line (in a folder: .txt, .text)")
    p.add_argument("--output", default="", help="the CSV to write (default: standard output)")
    p.add_argument("--top-k", type=_at_least_one, default=1,
                   help="classes per input, most probable first (default: 1; more than the "
                   "model's classes gives all of them)")
    p.add_argument("--skip-unreadable", action="store_true",
                   help="skip files that cannot be decoded instead of stopping at the first; "
                   "they are listed on stderr and, with --output X.csv, in X.skipped.csv")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best",
                   help="best on validation (default) or the last evaluated weights (where "
                   "the run kept them: train.keep_weights)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.set_defaults(func=predict)


def skipped_path(output: Path) -> Path:
    """Where ``--skip-unreadable`` lists the skipped files beside ``--output``."""
    return output.with_name(f"{output.stem}.skipped.csv")


def predict(args: argparse.Namespace) -> None:
    from semibench.inference import (
        RunError,
        UnreadableInput,
        load_run,
        predict_files,
        predictions_csv,
        shorten,
        skipped_csv,
    )
    from semibench.io import atomic_write_text

    run = load_run(args.run, args.checkpoint, args.device)
    if args.top_k > len(run.classes):
        logger.info("semibench predict: --top-k %d: the model has %d classes; giving all %d",
                    args.top_k, len(run.classes), len(run.classes))
    try:
        result = predict_files(run, args.input, top_k=args.top_k,
                               skip_unreadable=args.skip_unreadable)
    except UnreadableInput as err:
        raise RunError(f"{err}; --skip-unreadable skips such files and lists them") from None
    output = Path(args.output) if args.output else None
    skipped = [s.input for s in result.skipped]
    if args.skip_unreadable and output is not None:  # written every time: never a stale list
        atomic_write_text(skipped_path(output), skipped_csv(result.skipped))
    if skipped:
        where = (f"; every one in {skipped_path(output)}" if output is not None
                 else "")
        logger.warning("semibench predict: skipped %d unreadable file(s): %s%s", len(skipped),
                       shorten(skipped) if output is not None else ", ".join(skipped), where)
    if not result.predictions:
        inputs = shorten([str(i) for i in args.input], 3)
        why = (f"all {len(skipped)} file(s) unreadable" if skipped
               else "no non-empty lines" if run.domain == "text" else "no inputs")
        raise RunError(f"nothing to predict in {inputs}: {why}")
    text = predictions_csv(result.predictions)
    if output is not None:
        atomic_write_text(output, text)
        logger.info("semibench predict: wrote %d predictions to %s", len(result.predictions),
                    output)
    else:
        sys.stdout.write(text)


def add_evaluate(sub: Subparsers) -> None:
    p = sub.add_parser("evaluate", help="re-evaluate a run's checkpoints on a task's test set "
                       "and compare with its metrics.json")
    p.add_argument("--run", required=True, help="a finished run directory (has metrics.json)")
    p.add_argument("--task", default="", help="the task whose test set to use (default: the "
                   "run's; a variant's run: its registered task)")
    p.add_argument("--data", default="",
                   help="its prepared directory (default: data/prepared/<task>)")
    p.add_argument("--checkpoint", nargs="+", choices=["best", "last"], default=None,
                   help="best on validation, last, or both (default: the weights the run "
                   "kept, train.keep_weights)")
    p.add_argument("--output", default="", help="also write the results here, as JSON")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu; the "
                   "numbers reproduce exactly on the CPU)")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads (default: the run's, as recorded in metrics.json)")
    p.set_defaults(func=evaluate)


def evaluate(args: argparse.Namespace) -> None:
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


COMMANDS = [add_predict, add_evaluate]
