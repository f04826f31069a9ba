"""Diagnostics through :mod:`logging`: one handler per command (one job, one run), on stderr,
which every Snakemake rule sends into the job's log file."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(message)s"


def configure(level: int = logging.INFO) -> None:
    """Send the ``semibench`` loggers to stderr, once per process (a second call replaces the
    handler instead of adding one, so nothing is printed twice)."""
    root = logging.getLogger("semibench")
    for handler in list(root.handlers):
        if getattr(handler, "_semibench", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler._semibench = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
