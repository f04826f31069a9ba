"""``semibench train``: one run."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)
Subparsers = argparse._SubParsersAction


def add_train(sub: Subparsers) -> None:
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
    p.set_defaults(func=train)


def train(args: argparse.Namespace) -> None:
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


COMMANDS = [add_train]
