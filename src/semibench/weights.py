"""Pretrained weights a config needs, checked on the file system before anything runs.

A backbone declares the files it reads (``semibench.backbones.base.declare_weights``) as
:class:`Weights`: names in a local directory, or in a Hugging Face repository of the local hub
cache. Checking them is a few ``stat`` calls: no model is built and nothing is downloaded, so
the config check, the planner, every Snakemake invocation (dry runs too) and the train job can
all afford it, and a machine without the weights learns it before a fetch job runs, not after.

This module imports nothing heavy: the workflow keeps the list in its cached plan and checks
it again on every call (weights appear and disappear without the config changing).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semibench.errors import SemiBenchError

#: what the config check does with missing weights: fail, print a line each, or not look
WEIGHT_MODES = ("error", "warn", "skip")
#: the weights of a Hugging Face model (any one of them; sharded checkpoints have an index)
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                   "pytorch_model.bin.index.json")
#: a WordPiece / fast tokenizer
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json")
HUB_CACHE_ENV = "$HF_HUB_CACHE, else $HF_HOME/hub"


class MissingWeightsError(SemiBenchError, FileNotFoundError):
    """Pretrained weights that a backbone needs are not on this machine (one line: every
    missing file and where to put it)."""


def hub_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The Hugging Face hub cache, by ``huggingface_hub``'s rules, read from the environment
    now (not when ``huggingface_hub`` was imported): ``cache_dir``, ``$HF_HUB_CACHE``,
    ``$HUGGINGFACE_HUB_CACHE``, ``$HF_HOME/hub``, ``$XDG_CACHE_HOME/huggingface/hub``,
    ``~/.cache/huggingface/hub``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ
    home = env.get("HF_HOME") or str(Path(env.get("XDG_CACHE_HOME") or
                                          Path("~/.cache").expanduser()) / "huggingface")
    hub = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or str(Path(home) / "hub")
    return Path(os.path.expandvars(hub)).expanduser()


def _in_hub_cache(repo: str, name: str, cache: Path) -> bool:
    import huggingface_hub

    found = huggingface_hub.try_to_load_from_cache(repo, name, cache_dir=str(cache))
    return isinstance(found, str)


@dataclass(frozen=True)
class Weights:
    """Files one backbone reads: every group of ``files`` must be there (a group is satisfied
    by any one of its names), in ``directory`` or in one of ``repos`` in the hub cache."""

    backbone: str
    files: tuple[tuple[str, ...], ...]
    #: a local directory; relative paths are from the working directory, as the jobs see them
    directory: str | None = None
    #: an environment variable that names the directory instead of ``directory`` when set
    env: str | None = None
    #: else: Hugging Face repositories (the first that has every group is used)
    repos: tuple[str, ...] = ()
    #: their hub cache; None: :func:`hub_cache_dir` at check time
    cache_dir: str | None = None
    #: how to get them there
    fix: str = ""

    def location(self) -> Path:
        """The directory looked in (or the hub cache)."""
        if self.directory is None and not self.repos:
            return Path()
        if self.directory is None:
            return hub_cache_dir(self.cache_dir)
        if self.env and os.environ.get(self.env):
            return Path(os.environ[self.env]).expanduser().absolute()
        return Path(self.directory).expanduser().absolute()

    def _absent(self, has: Any) -> list[str]:
        return [_group_text(group) for group in self.files if not any(has(n) for n in group)]

    def missing(self) -> list[str]:
        """The groups that are not there (names joined by "or"); empty when all are."""
        if self.directory is None and not self.repos:
            return ["pretrained weights"]  # nowhere they could come from
        where = self.location()
        if self.directory is not None:
            return self._absent(lambda name: (where / name).is_file())
        best: list[str] | None = None
        for repo in self.repos:
            absent = self._absent(lambda name, repo=repo: _in_hub_cache(repo, name, where))
            if not absent:
                return []
            best = absent if best is None else best
        return best or []

    def describe(self, tasks: Iterable[str] = ()) -> str:
        """What is missing and where it goes, as one line (without a final full stop)."""
        absent = self.missing()
        names = ", ".join(absent) if absent else "nothing"
        tasks = list(tasks)
        head = self.backbone + (f" (tasks {', '.join(tasks)})" if tasks else "")
        if self.directory is None and not self.repos:
            where = "no source of pretrained weights"
        elif self.directory is None:
            cache = self.location()
            repo = self.repos[0]
            if all(not _in_hub_cache(r, "config.json", cache) for r in self.repos) and \
                    any("config.json" in g for g in self.files):
                where = f"{repo} is not in the local Hugging Face cache {cache} ({HUB_CACHE_ENV})"
            else:
                where = (f"{names} of {repo} not in the local Hugging Face cache {cache} "
                         f"({HUB_CACHE_ENV})")
            if len(self.repos) > 1:
                where += f" (looked for {', '.join(self.repos)})"
        else:
            where = f"{names} not in {self.location()}"
            if self.env and not os.environ.get(self.env):
                where += f" (${self.env} unset)"
            elif self.env:
                where += f" (from ${self.env})"
        return f"{head}: {where}" + (f"; {self.fix}" if self.fix else "")

    def as_dict(self) -> dict[str, Any]:
        return json_ready(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Weights:
        return cls(**{**data, "files": tuple(tuple(g) for g in data["files"]),
                      "repos": tuple(data.get("repos", ()))})


def _group_text(group: tuple[str, ...]) -> str:
    """A group's names joined by "or", without the sharded-checkpoint indexes (they go
    with a weights file named in the group)."""
    shown = [n for n in group if not n.endswith(".index.json")] or list(group)
    return " or ".join(shown)


def json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def hf_model(backbone: str, files: tuple[tuple[str, ...], ...], directory: str | Path | None,
             repos: tuple[str, ...], cache_dir: str | Path | None, random: str) -> Weights:
    """A Hugging Face checkpoint: in ``directory`` when given, else in the hub cache.
    ``random`` says how to train without it (e.g. ``backbone_args.pretrained: false``)."""
    repo = repos[0]
    if directory is not None:
        fix = (f"put a Hugging Face checkpoint of {repo} there (`hf download {repo} --local-dir "
               f"{directory}`), or {random} for random weights")
        return Weights(backbone, files, directory=str(directory), fix=fix)
    fix = (f"get it with `hf download {repo}` (on a machine with internet access, then copy "
           f"the cache), or set backbone_args.pretrained_dir to a directory holding it, or "
           f"{random} for random weights")
    return Weights(backbone, files, repos=repos,
                   cache_dir=None if cache_dir is None else str(cache_dir), fix=fix)


def merge(needed: Iterable[tuple[Weights, str]]) -> list[tuple[Weights, list[str]]]:
    """(weights, task) pairs as one entry per distinct weights, with the tasks that need it
    in first-seen order."""
    out: dict[Weights, list[str]] = {}
    for weights, task in needed:
        tasks = out.setdefault(weights, [])
        if task and task not in tasks:
            tasks.append(task)
    return list(out.items())


def missing_entries(entries: Iterable[tuple[Weights, list[str]]]
                    ) -> list[tuple[Weights, list[str]]]:
    """The entries whose files are not all there."""
    return [(w, tasks) for w, tasks in entries if w.missing()]


def missing_message(missing: list[tuple[Weights, list[str]]]) -> str:
    """Every missing entry in one line: what, for which tasks, where it goes."""
    items = [w.describe(tasks) for w, tasks in missing]
    if len(items) == 1:
        return f"missing pretrained weights (nothing downloads at run time): {items[0]}"
    numbered = "; ".join(f"({i}) {item}" for i, item in enumerate(items, 1))
    return f"{len(items)} sets of pretrained weights missing (nothing downloads at run time): " \
           f"{numbered}"


def warn_missing(entries: Iterable[dict[str, Any]], prefix: str = "SemiBench warning") -> int:
    """Print one line per missing entry of a stored list (``{"weights": ..., "tasks": [...]}``,
    as the workflow's cached plan keeps it) on stderr; return how many."""
    missing = missing_entries((Weights.from_dict(e["weights"]), e["tasks"]) for e in entries)
    for weights, tasks in missing:
        print(f"{prefix}: missing pretrained weights: {weights.describe(tasks)} (the train jobs "
              "of these tasks will fail with this line; a dry run only warns)", file=sys.stderr)
    return len(missing)
