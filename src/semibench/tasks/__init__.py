"""Benchmark tasks: one module per source family, each registering its tasks in ``TASKS``."""

from semibench.registry import import_submodules
from semibench.tasks.base import TASKS, Prepared, Task, create_task, load_prepared

import_submodules(__name__)

__all__ = ["TASKS", "Prepared", "Task", "create_task", "load_prepared"]
