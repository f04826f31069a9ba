"""Diagnostics through :mod:`logging`: one handler per command (one job, one run), on stderr,
which every Snakemake rule sends into the job's log file."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(message)s"


class _Stderr(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is when a record is written (pytest's capture, a
    redirected stream), not on the stream of the moment it was made."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(level: int = logging.INFO) -> None:
    """Send the ``semibench`` loggers to stderr, once per process (a second call replaces the
    handler instead of adding one, so nothing is printed twice)."""
    root = logging.getLogger("semibench")
    for handler in list(root.handlers):
        if getattr(handler, "_semibench", False):
            root.removeHandler(handler)
    handler = _Stderr()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler._semibench = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
