"""Shared fixtures: small prepared datasets written in the project's prepared format."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _restore_registries():
    """Plugins and file tasks a test registers do not leak into the next test (e.g. a grid
    over every algorithm)."""
    from semibench import plugins
    from semibench.algorithms import ALGORITHMS
    from semibench.backbones import BACKBONES
    from semibench.tasks import TASKS

    registries = (ALGORITHMS, BACKBONES, TASKS)
    before = [set(r.names()) | set(r.families()) for r in registries]
    loaded, origins = dict(plugins._LOADED), dict(plugins._ORIGINS)
    yield
    from semibench.tasks import from_files

    for registry, names in zip(registries, before, strict=True):
        for name in (set(registry.names()) | set(registry.families())) - names:
            registry.unregister(name)
            if registry is TASKS:
                from_files._DECLARED.pop(name, None)
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)
    plugins._ORIGINS.clear()
    plugins._ORIGINS.update(origins)


@pytest.fixture(autouse=True)
def _restore_semibench_logger():
    """Each test starts with the ``semibench`` loggers' records reaching the root (where
    ``caplog`` listens), whatever ran before in the worker (``semibench.cli.main`` calls
    ``log.configure``, which stops them there), and leaves the logger as it found it."""
    import logging

    logger = logging.getLogger("semibench")
    state = (list(logger.handlers), logger.level, logger.propagate)
    logger.propagate = True  # whatever ran before in this worker: caplog hears the test
    # a library that configures logging in-process (dictConfig's disable_existing_loggers)
    # switches off every logger that exists by then, ours included
    for name, each in logging.root.manager.loggerDict.items():
        if name.startswith("semibench") and isinstance(each, logging.Logger):
            each.disabled = False
    yield
    logger.handlers[:] = state[0]
    logger.setLevel(state[1])
    logger.propagate = state[2]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def prepared_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real offline MNIST task, fetched and prepared once per test session."""
    from semibench.tasks import create_task

    root = tmp_path_factory.mktemp("mnist")
    task = create_task("mnist")
    task.fetch(root / "raw")
    task.prepare(root / "raw", root / "prepared")
    return root / "prepared"


@pytest.fixture(scope="module")
def split_path(prepared_mnist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A balanced MNIST split of ``prepared_mnist``: 40 labels, 20 validation per class."""
    from semibench.splits import make_split, write_split
    from semibench.tasks import load_prepared

    data = load_prepared(prepared_mnist)
    path = tmp_path_factory.mktemp("split") / "seed0.json"
    write_split(make_split(data.train_y, task="mnist", num_classes=10, num_labels=40,
                           val_per_class=20, seed=0), path)
    return path


@pytest.fixture(scope="module")
def lt_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Synthetic MNIST-format data and a long-tailed split (tests/helpers/imbalance.py)."""
    from tests.helpers.imbalance import write_lt_data

    return write_lt_data(tmp_path_factory.mktemp("lt"))


@pytest.fixture(scope="session")
def combined_pipeline(tmp_path_factory: pytest.TempPathFactory):
    """The suite's one full Snakemake pipeline (tests/helpers/pipeline.py), run once: its tests
    carry ``@pytest.mark.xdist_group("combined_pipeline")`` so they share one xdist worker.
    A test that changes the working directory's files puts them back."""
    from tests.helpers.pipeline import run_combined

    pipeline = run_combined(tmp_path_factory.mktemp("combined"))
    run = pipeline.run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return pipeline


#: xdist groups that hold the suite's longest chains, started first so that they never form
#: its tail: the SLURM time-limit test (minutes of SLURM's own clock), the other SLURM tests,
#: the shared pipeline and the tests that read it
FIRST_GROUPS = ("slurm_time_limit", "slurm", "combined_pipeline")


def _start_rank(item: pytest.Item) -> tuple[int, int]:
    mark = item.get_closest_marker("xdist_group")
    group = (mark.args[0] if mark and mark.args else mark.kwargs.get("name")) if mark else None
    if group in FIRST_GROUPS:
        return (0, FIRST_GROUPS.index(group))
    return (1, 0) if item.get_closest_marker("slow") else (2, 0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long chains first, then the other slow tests, then the fast ones (a stable sort: each
    keeps its collection order): xdist hands out work in this order."""
    items.sort(key=_start_rank)
