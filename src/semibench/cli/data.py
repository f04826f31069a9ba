"""``semibench fetch``, ``prepare``, ``backtranslate`` and ``split``: a task's data, from its
sources to one seed's split."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)
Subparsers = argparse._SubParsersAction


def add_fetch(sub: Subparsers) -> None:
    p = sub.add_parser("fetch", help="put a task's verified source files into a raw directory")
    p.add_argument("--task", required=True)
    p.add_argument("--raw-dir", required=True)
    p.set_defaults(func=fetch)


def fetch(args: argparse.Namespace) -> None:
    from semibench.tasks import create_task

    create_task(args.task).fetch(Path(args.raw_dir))


def add_prepare(sub: Subparsers) -> None:
    p = sub.add_parser("prepare", help="convert raw files into the prepared format")
    p.add_argument("--task", required=True)
    p.add_argument("--raw-dir", required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=prepare)


def prepare(args: argparse.Namespace) -> None:
    from semibench.tasks import create_task

    create_task(args.task).prepare(Path(args.raw_dir), Path(args.out_dir))


def add_backtranslate(sub: Subparsers) -> None:
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
    p.set_defaults(func=backtranslate)


def backtranslate(args: argparse.Namespace) -> None:
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


def add_split(sub: Subparsers) -> None:
    p = sub.add_parser("split", help="labelled/unlabelled/validation split for one seed")
    p.add_argument("--task", required=True)
    p.add_argument("--prepared", required=True)
    p.add_argument("--num-labels", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--long-tailed", default="",
                   help="a long-tailed split, by its tag (e.g. lt_l100_u100_m3000; "
                        "semibench.splits_lt); num-labels is then N1, the head count")
    p.set_defaults(func=split)


def split(args: argparse.Namespace) -> None:
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


COMMANDS = [add_fetch, add_prepare, add_backtranslate, add_split]
