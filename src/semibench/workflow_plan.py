"""What the Snakemake workflow needs from a config, cached so that reading the workflow is cheap.

Checking a config needs the registries, and so torch and every task module (seconds); a dry
run, ``--unlock`` or ``--report`` should not pay that every time. The *plan* (the checked config
with its defaults, the run grid, every run's resolved settings; per task its domain, whether it
uses back-translations, ``base``, the registered task whose data it reads (itself, or what a
variant names: :mod:`semibench.variants`) and its ``long_tailed`` setting) is computed once per
(config, SemiBench source, schema) and cached as JSON under ``.snakemake/semibench/``. This
module imports nothing heavy; it hashes the package's files (a few milliseconds, the one
digest of :func:`semibench.train.provenance.source_digest`) to know when SemiBench changed.

Pretrained weights are not part of the cached answer: the plan keeps the list of files the
config's backbones read (:func:`semibench.config.weights_needed`), and every call looks for
them again (a few ``stat`` calls) and prints one warning line per missing set on stderr. A dry
run (``-n``) cannot be told apart from a real run here, so neither fails: a real run's train
job fails on the same line, before it builds anything.

Not cached: a config with ``plugins`` or ``from_files`` tasks. Their files live outside the
package and can change without SemiBench changing, so they are checked afresh on every call.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from semibench.errors import SemiBenchError
from semibench.train.provenance import source_digest

__all__ = ["ConfigInvalid", "compute", "run_key", "source_digest", "workflow_plan"]

CACHE_DIR = Path(".snakemake") / "semibench"
#: bump when the plan's layout changes
PLAN_VERSION = 3


class ConfigInvalid(SemiBenchError, ValueError):
    """The config failed its checks; the message is semibench.config's one line."""


def run_key(task: str, num_labels: int, algorithm: str, seed: int) -> str:
    return f"{task}/{num_labels}/{algorithm}/{seed}"


def cacheable(config: dict[str, Any]) -> bool:
    tasks = config.get("tasks") or {}
    return not config.get("plugins") and not any(
        isinstance(s, dict) and "from_files" in s for s in tasks.values())


def compute(config: dict[str, Any], schema_path: str | Path,
            base_dir: str | Path | None = None) -> dict[str, Any]:
    """The plan, from the full checks (imports the ML stack); relative paths are read from
    ``base_dir``, the config file's folder."""
    from semibench.config import (
        ConfigError,
        check_config,
        load_schema,
        run_config,
        run_grid,
        weights_needed,
    )
    from semibench.tasks import create_task
    from semibench.variants import task_settings

    try:
        checked = check_config(config, load_schema(schema_path), base_dir=base_dir,
                               weights="skip")
        grid = run_grid(checked)
        runs = {run_key(*run): run_config(checked, *run) for run in grid}
        weights = [{"weights": w.as_dict(), "tasks": tasks}
                   for w, tasks in weights_needed(checked)]
    except ConfigError as err:
        raise ConfigInvalid(str(err)) from None
    tasks = {}
    for name, settings in task_settings(checked).items():  # base: a variant's registered task
        task = create_task(settings["base"])
        tasks[name] = {"domain": task.domain, "backtranslation": bool(task.backtranslation),
                       **settings}
    return {"version": PLAN_VERSION, "config": checked, "grid": [list(r) for r in grid],
            "runs": runs, "tasks": tasks, "weights": weights}


def workflow_plan(config: dict[str, Any], schema_path: str | Path,
                  cache_dir: str | Path = CACHE_DIR,
                  base_dir: str | Path | None = None) -> dict[str, Any]:
    """The plan of ``config``: from the cache when SemiBench, the schema and the config are the
    ones it was computed for, else computed (and cached); missing pretrained weights are
    looked for on every call and warned about on stderr. Raises :class:`ConfigInvalid`.
    ``base_dir`` (relative paths) is not part of the cache key: a cached config has none."""
    from semibench.weights import warn_missing

    plan = _workflow_plan(config, schema_path, cache_dir, base_dir)
    warn_missing(plan.get("weights", []))
    return plan


def _workflow_plan(config: dict[str, Any], schema_path: str | Path,
                   cache_dir: str | Path, base_dir: str | Path | None) -> dict[str, Any]:
    config = json.loads(json.dumps(config, default=str))
    if not cacheable(config):
        return compute(config, schema_path, base_dir)
    key = hashlib.sha256(json.dumps(
        [PLAN_VERSION, config, source_digest(), Path(schema_path).read_text(encoding="utf-8")],
        sort_keys=True).encode()).hexdigest()
    path = Path(cache_dir) / f"plan-{key[:32]}.json"
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
        if plan.get("version") == PLAN_VERSION:
            return plan
    except (OSError, ValueError):
        pass  # absent or unreadable: compute it again
    plan = compute(config, schema_path)
    from semibench.io import atomic_write_text

    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        for old in Path(cache_dir).glob("plan-*.json"):  # one config's plan per directory
            if old != path and _same_benchmark(old, plan["config"]["benchmark"]):
                old.unlink(missing_ok=True)
        atomic_write_text(path, json.dumps(plan, sort_keys=True))
    except OSError:
        pass  # a read-only working directory: just no cache
    return plan


def _same_benchmark(path: Path, benchmark: str) -> bool:
    """Whether a cached plan is an outdated plan of the same benchmark."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))["config"]["benchmark"] == benchmark
    except (OSError, ValueError, KeyError, TypeError):
        return True  # unreadable: remove it
