"""The Task interface and the one prepared format every task is converted into.

A task is one file under ``semibench/tasks/`` holding a ``Task`` subclass decorated with
``@TASKS.register(name)``. It says what the data is (domain, classes), how to get it
(``fetch``), how to turn it into the prepared format (``prepare``) and the defaults that a
config may override (label budgets, backbone, augmentation, trainer settings).

Prepared format (``data/prepared/<task>/``):

* ``data.npz`` (no pickle): ``train_x``, ``train_y``, ``test_x``, ``test_y`` and, where the
  source has its own development split, ``val_x``, ``val_y``. ``*_y`` are int64 class
  indices; in ``train_y``, -1 marks a sample without a label (e.g. STL-10's unlabelled
  images), which only ever enters the unlabelled set. ``*_x`` are uint8 images
  ``[N, C, H, W]`` (image), fixed-width unicode strings ``[N]`` or ``[N, K]`` (text; extra
  columns are e.g. back-translations) or float32 mono waveforms ``[N, T]`` in [-1, 1] (audio).
* ``meta.json``: name, domain, classes, num_classes, num_train, num_test, source,
  raw_checksums (file -> SHA-256 of what ``fetch`` verified), data_sha256 and domain extras
  (e.g. ``sample_rate``). ``labelled_set: "fixed"`` says that every labelled training sample
  is in the labelled set for every seed (Semi-Aves, FSDnoisy18k); otherwise it is sampled.
"""

from __future__ import annotations

import zipfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from semibench.errors import SemiBenchError
from semibench.io import (
    ChecksumError,
    atomic_path,
    atomic_write_json,
    read_json,
    sha256_file,
    verify_sha256,
)
from semibench.registry import Registry

TASKS: Registry[type[Task]] = Registry("task")


class Task(ABC):
    """Metadata and data access for one benchmark task. Subclasses set the class attributes."""

    name: ClassVar[str]
    domain: ClassVar[str]
    classes: ClassVar[tuple[str, ...]]
    label_budgets: ClassVar[tuple[int, ...]]
    #: validation samples per class, drawn from the training pool and never trained on
    val_per_class: ClassVar[int]
    #: "pool" (validation drawn per seed from the training pool) or "prepared" (the source's
    #: development split, ``val_x``/``val_y``, e.g. USB's NLP and audio dev sets)
    validation_source: ClassVar[str] = "pool"
    #: every labelled training sample is labelled for every seed (Semi-Aves, FSDnoisy18k)
    fixed_labelled: ClassVar[bool] = False
    #: the strong text view uses back-translations made by the ``backtranslate`` rule (USB's
    #: NLP protocol); without them the token-edit stand-in is used
    backtranslation: ClassVar[bool] = False
    backbone: ClassVar[str]
    backbone_args: ClassVar[dict[str, Any]] = {}
    #: domain augmentation settings passed to ``semibench.augment.build_views``
    augment: ClassVar[dict[str, Any]] = {}
    #: trainer defaults for this task (see ``semibench.train.config.TrainConfig``)
    train: ClassVar[dict[str, Any]] = {}
    source: ClassVar[str]
    #: size of the prepared training set when it is fixed by the source (lets config
    #: validation reject impossible label budgets before anything runs); None if unknown
    num_train: ClassVar[int | None] = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def pool_size(self) -> int | None:
        """Training samples left for the labelled/unlabelled pool after the validation split."""
        if self.num_train is None:
            return None
        if self.validation_source == "prepared":
            return self.num_train
        return self.num_train - self.val_per_class * self.num_classes

    @abstractmethod
    def fetch(self, raw_dir: Path) -> None:
        """Put the verified source files into ``raw_dir`` and write ``raw_dir/manifest.json``."""

    @abstractmethod
    def prepare(self, raw_dir: Path, out_dir: Path) -> None:
        """Convert the files in ``raw_dir`` into the prepared format in ``out_dir``."""


def create_task(name: str) -> Task:
    """The only constructor of tasks; an unknown name lists the registered ones."""
    return TASKS.get(name)()


# --------------------------------------------------------------------------- raw manifests


def write_manifest(raw_dir: Path, task: str, source: str, files: dict[str, str]) -> None:
    """Record what ``fetch`` verified: file name (relative to raw_dir) -> SHA-256."""
    atomic_write_json(raw_dir / "manifest.json", {"task": task, "source": source, "files": files})


def read_manifest(raw_dir: Path) -> dict[str, Any]:
    """Read the manifest and re-verify every file it lists (catches later corruption)."""
    manifest = read_json(raw_dir / "manifest.json")
    for rel, digest in manifest["files"].items():
        try:
            verify_sha256(raw_dir / rel, digest)
        except (ChecksumError, FileNotFoundError) as err:
            # the fetch rule's output is the manifest: forcing it is what refetches the file
            raise ChecksumError(
                f"{err}; refetch it with `snakemake --cores all --forcerun "
                f"{raw_dir / 'manifest.json'}` (or `semibench fetch --task "
                f"{manifest.get('task', raw_dir.name)} --raw-dir {raw_dir}`)") from None
    return manifest


# --------------------------------------------------------------------------- prepared data


@dataclass
class Prepared:
    meta: dict[str, Any]
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    val_x: np.ndarray | None = None
    val_y: np.ndarray | None = None

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])


def write_prepared(
    out_dir: Path,
    *,
    task: Task,
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    raw_checksums: dict[str, str],
    extra: dict[str, Any] | None = None,
    val_x: np.ndarray | None = None,
    val_y: np.ndarray | None = None,
) -> None:
    """Check shapes and labels, then write ``data.npz`` and ``meta.json`` atomically."""
    splits = [("train", train_x, train_y, -1), ("test", test_x, test_y, 0)]
    if val_x is not None:
        splits.append(("val", val_x, val_y, 0))
    for split, x, y, lowest in splits:
        if len(x) != len(y):
            raise ValueError(f"{task.name}: {split}_x has {len(x)} rows but {split}_y has {len(y)}")
        if len(y) and (y.min() < lowest or y.max() >= task.num_classes):
            raise ValueError(f"{task.name}: {split}_y outside [{lowest}, {task.num_classes})")
    arrays = {"train_x": train_x, "train_y": train_y.astype(np.int64),
              "test_x": test_x, "test_y": test_y.astype(np.int64)}
    if val_x is not None:
        arrays.update(val_x=val_x, val_y=val_y.astype(np.int64))
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "data.npz") as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    meta = {
        "name": task.name,
        "domain": task.domain,
        "classes": list(task.classes),
        "num_classes": task.num_classes,
        "num_train": int(len(train_y)),
        "num_test": int(len(test_y)),
        "num_val": None if val_y is None else int(len(val_y)),
        "num_train_unlabelled_only": int((train_y < 0).sum()),
        "train_class_counts": np.bincount(train_y[train_y >= 0],
                                          minlength=task.num_classes).tolist(),
        "source": task.source,
        "raw_checksums": raw_checksums,
        "data_sha256": sha256_file(out_dir / "data.npz"),
        **(extra or {}),
    }
    atomic_write_json(out_dir / "meta.json", meta)


class PreparedDataError(SemiBenchError, RuntimeError):
    """The prepared data are missing, unreadable or not the ones their meta.json describes."""


def _reprepare(prepared_dir: Path) -> str:
    return (f"rerun its prepare step: `snakemake --cores all --forcerun "
            f"{prepared_dir / 'meta.json'}`")


def verify_prepared(prepared_dir: str | Path) -> str:
    """Check ``data.npz`` against the SHA-256 its ``meta.json`` recorded; return the SHA-256.

    Training on data that changed after they were prepared (an edit, a half-copied file, a
    disk fault) would stamp today's run with yesterday's description of the data.
    """
    prepared_dir = Path(prepared_dir)
    data, meta_path = prepared_dir / "data.npz", prepared_dir / "meta.json"
    try:
        expected = read_json(meta_path)["data_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise PreparedDataError(f"{meta_path} is missing or unreadable ({err}); "
                                f"{_reprepare(prepared_dir)}") from None
    try:
        actual = sha256_file(data)
    except OSError as err:
        raise PreparedDataError(f"{data} is unreadable ({err.strerror or err}); "
                                f"{_reprepare(prepared_dir)}") from None
    if actual != expected:
        raise PreparedDataError(
            f"{data} does not match the SHA-256 in {meta_path} (recorded {expected[:12]}..., "
            f"found {actual[:12]}...): it changed after it was prepared; "
            f"{_reprepare(prepared_dir)}")
    return actual


def load_prepared(prepared_dir: str | Path) -> Prepared:
    prepared_dir = Path(prepared_dir)
    meta = read_json(prepared_dir / "meta.json")
    try:
        return _load_arrays(prepared_dir, meta)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise PreparedDataError(f"{prepared_dir / 'data.npz'} is unreadable "
                                f"({type(err).__name__}: {err}); {_reprepare(prepared_dir)}"
                                ) from None


def _load_arrays(prepared_dir: Path, meta: dict[str, Any]) -> Prepared:
    with np.load(prepared_dir / "data.npz", allow_pickle=False) as data:
        return Prepared(
            meta=meta,
            train_x=data["train_x"],
            train_y=data["train_y"],
            test_x=data["test_x"],
            test_y=data["test_y"],
            val_x=data["val_x"] if "val_x" in data.files else None,
            val_y=data["val_y"] if "val_y" in data.files else None,
        )
