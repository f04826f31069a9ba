"""The one error type of SemiBench: every failure a user can cause or meet.

Bad input (a config key, a label budget, a corrupt file), a dead mirror, a full disk or a busy
GPU is a :class:`SemiBenchError`; the ``semibench`` command prints it as one line that says what
to do and exits with status 1 (``semibench.cli``). Anything else is a bug and keeps its
traceback. Subclasses keep a builtin base too (``ValueError``, ``OSError``...) where callers
already catch one.
"""

from __future__ import annotations


class SemiBenchError(Exception):
    """A failure of the inputs or the machine, not of the code: printed as one line."""


class TrainingStopped(RuntimeError):
    """SIGTERM arrived: the state at the last finished step is checkpointed, no metrics. Not a
    failure: ``semibench train`` exits as if killed by SIGTERM so that a scheduler retries, and
    the retry resumes. Here, not in the trainer, so that the command catches it without
    importing torch."""
