"""Benchmark tasks: one module per source family, each registering its tasks in ``TASKS``."""

from semibench.registry import import_submodules
from semibench.tasks.base import (
    TASKS,
    Prepared,
    PreparedDataError,
    Task,
    create_task,
    load_prepared,
    verify_prepared,
)

import_submodules(__name__)

__all__ = [
    "TASKS", "Prepared", "PreparedDataError", "Task", "create_task", "load_prepared",
    "verify_prepared",
]
