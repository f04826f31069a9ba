"""A run's ``history.log``: one line per event of its life, kept across the job logs that
Snakemake replaces at each retry."""

from __future__ import annotations

import logging
import time
from pathlib import Path

HISTORY = "history.log"
log = logging.getLogger(__name__)


def note(out_dir: Path, line: str) -> None:
    """One event of a run's life (started afresh, resumed, stopped, finished): on stderr (the
    job's log) and appended to the run's ``history.log``, which outlives the job logs that
    Snakemake replaces at each retry."""
    log.info("%s", line)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with open(Path(out_dir) / HISTORY, "a", encoding="utf-8") as handle:
        handle.write(f"{stamp} {line}\n")
