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

# tasks a config declared with `from_files`, handed over by the workflow (after the built-in
# ones are registered, so that a clash names the built-in task)
from semibench.tasks.from_files import declare_from_environment  # noqa: E402

declare_from_environment()

__all__ = [
    "TASKS", "Prepared", "PreparedDataError", "Task", "create_task", "load_prepared",
    "verify_prepared",
]
