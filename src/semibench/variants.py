"""Task variants: several settings of one registered task in one benchmark.

A config entry ``tasks.<name>`` with ``variant_of: <registered task>`` is a task of its own for
everything a benchmark shows (run directories, tables, figures, the report) and uses the
registered task for everything about the data: its fetched and prepared files
(``data/raw/<base>``, ``data/prepared/<base>``, never fetched or prepared twice), its defaults
(classes, backbone, trainer settings, views) and its splits (``data/splits/<base>/...``: a
long-tailed split's path carries its setting's tag, so two settings never share a file, and a
balanced variant shares the registered task's split files, which are the same). Its own entry
sets label budgets, ``long_tailed``, algorithms and overrides exactly as any task entry; it
does not inherit the registered task's config entry.

Every place that turns a config task name into a registry name or a data path asks
:func:`base_task` (for a config) or :func:`run_base_task` (for a run's resolved settings, which
carry ``base_task`` when the run is a variant's). This module imports nothing, so the workflow
and the report can use it without the ML stack.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

#: the config key of a variant
VARIANT_KEY = "variant_of"
#: a variant's name names folders and job wildcards, as a registered task's does
_NAME = re.compile(r"[a-z0-9_]+")


def base_task(config: Mapping[str, Any], name: str) -> str:
    """The registered task whose data and defaults config task ``name`` uses: its
    ``variant_of``, or ``name`` itself."""
    settings = (config.get("tasks") or {}).get(name) or {}
    return str(settings.get(VARIANT_KEY, name))


def run_base_task(run: Mapping[str, Any]) -> str:
    """The registered task of one run's resolved settings (``semibench.config.run_config``, or
    the ``config`` of its ``metrics.json``)."""
    return str(run.get("base_task") or run["task"])


def check_variants(tasks: Mapping[str, Mapping[str, Any]], registered: Collection[str]) -> None:
    """The ``variant_of`` keys of a config's ``tasks`` against the registered task names;
    raises ``ValueError`` with one line naming the key."""
    for name, settings in tasks.items():
        if VARIANT_KEY not in settings:
            continue
        base = settings[VARIANT_KEY]
        key = f"tasks.{name}.{VARIANT_KEY}={base!r}"
        if "from_files" in settings:
            raise ValueError(f"tasks.{name}: {VARIANT_KEY} and from_files exclude each other "
                             f"(a variant reads the data of the task it names)")
        if not _NAME.fullmatch(name):
            raise ValueError(f"tasks.{name}: the variant's name must be lower-case letters, "
                             "digits and _ (it names folders and job wildcards)")
        if name in registered:
            raise ValueError(f"{key}: {name} is a registered task; give the variant a name of "
                             f"its own (e.g. {name}_lt)")
        parent = tasks.get(base)
        if parent is not None and VARIANT_KEY in parent:
            raise ValueError(f"{key}: {base} is itself a variant (of {parent[VARIANT_KEY]}); "
                             f"name the registered task: {VARIANT_KEY}: {parent[VARIANT_KEY]}")
        if base not in registered:
            raise ValueError(f"{key}: unknown task; allowed: {', '.join(sorted(registered))}")


def task_settings(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per config task: ``base`` (:func:`base_task`) and ``long_tailed`` (its section, or
    None), what the report needs to set a run next to USB's published row of the same
    registered task and setting (:func:`semibench.report.published.compare_to_published`)."""
    return {name: {"base": base_task(config, name),
                   "long_tailed": (settings or {}).get("long_tailed")}
            for name, settings in (config.get("tasks") or {}).items()}
