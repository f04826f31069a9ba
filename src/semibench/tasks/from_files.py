"""Tasks from the user's own files, declared in the config instead of written as code::

    tasks:
      my_flowers:
        from_files: {domain: image, train: flowers/train, test: flowers/test, image_size: 32}
        num_labels: [20]

Relative paths are read from the config file's folder (``semibench.config_file``), and
recorded as written. ``fetch`` lists the declared folders or tables, records the SHA-256 of
every file it read in ``data/raw/<task>/manifest.json`` (the files stay where they are) and
applies the declaration's policies to samples of the same content (``conflicting_labels``:
one content under two classes; ``test_duplicates``: a test sample also in train or
unlabelled), recording the choice and what it left out. ``prepare`` re-reads each file once,
checks its bytes against the manifest, leaves out what fetch left out, decodes the rest
(images: any PIL format, EXIF-rotated, resized on the shorter side and centre-cropped to
``image_size``; audio: any format libsndfile reads (``semibench.audio_io``), mono, resampled
to ``sample_rate``, the first ``seconds``; text: the first ``max_chars`` characters) and
writes the same prepared format as every task.

The workflow declares these tasks in its own process when it checks the config, and hands the
declarations, with the absolute folder their relative paths are read from, to the
``semibench`` jobs it starts in ``$SEMIBENCH_FILE_TASKS`` (they get no config), which
``semibench.tasks`` reads on import.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import re
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from semibench.audio_io import ClipConverter
from semibench.io import atomic_write_json, read_json, sha256_file
from semibench.registry import registering_from
from semibench.tasks._files import (
    SHOW,
    TEST_DUPLICATES,
    FileSource,
    FileTaskError,
    Item,
    Listing,
    cached_listing,
    check_budgets,
    held_out,
    list_files,
    source_paths,
)
from semibench.tasks._vision import IMAGENET_MEAN, IMAGENET_STD
from semibench.tasks.base import TASKS, Task, create_task, write_prepared
from semibench.tasks.mnist import stratified_holdout

logger = logging.getLogger(__name__)

FILE_TASKS_ENV = "SEMIBENCH_FILE_TASKS"
#: the fixed seed of a ``test_fraction`` hold-out (the same test set for every run)
HOLDOUT_SEED = 20241201
#: default label budget: labels per class (USB's smallest CV budget, 40 labels on CIFAR-10)
LABELS_PER_CLASS = 4
_NAME = re.compile(r"[a-z0-9_]+")
_OBJECT_REPR = re.compile(r" ?<[\w.]+ object at 0x[0-9a-f]+>")


def _defaults(source: FileSource) -> dict[str, Any]:
    """Backbone, views and trainer per domain: the offline tasks' choices, which suit small data
    (a small CNN from scratch for images and log-mel audio, the bundled MiniLM for text)."""
    if source.domain == "image":
        grey = source.channels == 1
        return {
            "backbone": "cnn_small",
            "backbone_args": {"in_chans": source.channels},
            "augment": {"mean": (0.449,) if grey else IMAGENET_MEAN,
                        "std": (0.226,) if grey else IMAGENET_STD,
                        "crop_ratio": 0.875, "hflip": True},
            "train": {"use_cat": True},
        }
    if source.domain == "text":
        return {
            "backbone": "minilm_l6",
            "backbone_args": {"max_length": 64, "trainable_layers": 2},
            "augment": {},
            "train": {"use_cat": False, "optimizer": "adamw", "lr": 3e-4, "weight_decay": 5e-4},
        }
    rate = source.sample_rate  # keywords' log-mel: 32 ms windows, 20 ms hop, at any rate
    return {
        "backbone": "cnn_small",
        "backbone_args": {"in_chans": 1, "stem_stride": 2},
        "augment": {"sample_rate": rate, "crop_seconds": source.seconds, "n_mels": 32,
                    "n_fft": 2 ** math.ceil(math.log2(0.032 * rate)),
                    "hop_length": max(1, round(0.02 * rate)), "max_shift_seconds": 0.1,
                    "gain_db": (-6.0, 6.0), "speed": (0.85, 1.15), "noise_snr_db": (10.0, 40.0),
                    "noise_exponent": (0.0, 2.0), "time_masks": 2, "time_mask_frames": 12,
                    "freq_masks": 2, "freq_mask_bins": 6},
        "train": {"use_cat": True, "lr": 0.05},
    }


class FileTask(Task):
    """A task whose data are the user's files. One subclass per declared name (the registry
    holds classes); its declaration lives in ``_DECLARED`` so that a config may change it."""

    def __init__(self) -> None:
        self.spec = _DECLARED[self.name]
        listing = cached_listing(self.spec)
        self.domain = self.spec.domain
        self.classes = listing.classes
        self.label_budgets = (LABELS_PER_CLASS * len(listing.classes),)
        self.val_per_class = self.spec.val_per_class
        defaults = _defaults(self.spec)
        self.backbone = defaults["backbone"]
        self.backbone_args = defaults["backbone_args"]
        self.augment = defaults["augment"]
        self.train = defaults["train"]
        counts = listing.train_counts()
        self.num_train = sum(n - held_out(n, self.spec.test_fraction)
                             for n in counts.values()) + sum(
            1 for it in listing.items if it.role != "test" and it.label is None)
        test = self.spec.test or f"{self.spec.test_fraction:.0%} of train, held out"
        self.source = (f"your files ({self.domain}): train {self.spec.train}, test {test}"
                       + (f", unlabelled {self.spec.unlabelled}" if self.spec.unlabelled else ""))

    # ------------------------------------------------------------------ fetch

    def fetch(self, raw_dir: Path) -> None:
        listing = list_files(self.spec)
        files, content = _hash_sources(self.spec, listing)
        duplicates = _duplicates(self.spec, listing, content)
        if listing.ignored:
            logger.warning("%s: ignored %d file(s) that are not %s by their suffix: %s%s",
                           self.name, len(listing.ignored), self.domain,
                           ", ".join(listing.ignored[:5]),
                           " ..." if len(listing.ignored) > 5 else "")
        raw_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(raw_dir / "manifest.json", {
            "task": self.name, "source": self.source, "declaration": self.spec.declaration(),
            "roots": listing.roots, "classes": list(listing.classes), "files": files,
            "ignored": listing.ignored, "duplicates": duplicates,
        })

    # ------------------------------------------------------------------ prepare

    def prepare(self, raw_dir: Path, out_dir: Path) -> None:
        manifest_path = raw_dir / "manifest.json"
        manifest = read_json(manifest_path)
        refetch = (f"fetch it again: `snakemake --cores all --forcerun {manifest_path}` (or "
                   f"`semibench fetch --task {self.name} --raw-dir {raw_dir}`)")
        where = self.spec.where
        if manifest.get("declaration") != self.spec.declaration():
            raise FileTaskError(f"{where}: the declaration differs from the one fetch recorded; "
                                f"{refetch}")
        listing = list_files(self.spec)
        expected, found = set(manifest["files"]), set(_keys(self.spec, listing))
        if expected != found or list(listing.classes) != manifest["classes"]:
            added, gone = sorted(found - expected), sorted(expected - found)
            raise FileTaskError(f"{where}: the files changed since fetch ({len(added)} added, "
                                f"{len(gone)} removed: {', '.join((added + gone)[:3])}); "
                                f"{refetch}")
        files_read = len(listing.items) if self.domain != "text" else len(manifest["files"])
        duplicates = manifest.get("duplicates", {})
        listing = _without(listing, {k for d in duplicates.values() for k in d["dropped"]})
        x, bad = _decode_all(self.spec, listing, manifest["files"], refetch)
        if bad:
            reasons = "; ".join(f"{key} ({why})" for key, why in bad[:3])
            raise FileTaskError(f"{where}: {len(bad)} of {len(x) + len(bad)} files could not be "
                                f"read: {reasons}{' ...' if len(bad) > 3 else ''}")
        index = {c: i for i, c in enumerate(listing.classes)}
        is_test = np.array([it.role == "test" for it in listing.items])
        y = np.array([-1 if it.label is None else index[it.label] for it in listing.items],
                     dtype=np.int64)
        if self.spec.test_fraction is not None:  # a fixed, stratified hold-out of the labelled
            labelled = np.flatnonzero(y >= 0)
            is_test[labelled[stratified_holdout(y[labelled], self.spec.test_fraction,
                                                HOLDOUT_SEED)]] = True
        stacked = _stack(self.spec, x)
        extra: dict[str, Any] = {
            "from_files": self.spec.declaration(), "files_read": files_read,
            "files_ignored": len(listing.ignored),
            # the policies' choices, part of the data's provenance (dropped: a count here,
            # the keys in the manifest)
            "duplicates": {key: {**d, "dropped": len(d["dropped"])}
                           for key, d in duplicates.items()}}
        if self.domain == "audio":
            extra.update(sample_rate=self.spec.sample_rate, clip_seconds=self.spec.seconds)
        if self.domain == "image":
            extra.update(image_size=self.spec.image_size, channels=self.spec.channels)
        write_prepared(
            out_dir, task=self,
            train_x=stacked[~is_test], train_y=y[~is_test],
            test_x=stacked[is_test], test_y=y[is_test],
            # the manifest holds every file's SHA-256; its own hash ties it to these data
            raw_checksums={"manifest.json": sha256_file(manifest_path)},
            extra=extra,
        )


# --------------------------------------------------------------------------- hashing


def _keys(source: FileSource, listing: Listing) -> list[str]:
    """Manifest keys: role/path of each file (folders) or role/name of each table."""
    if source.domain == "text":
        return [f"{role}/{Path(root).name}" for role, root in listing.roots.items()]
    return [f"{it.role}/{it.rel}" for it in listing.items]


def _path(listing: Listing, item: Item) -> Path:
    return Path(listing.roots[item.role]) / item.rel


def _hash_sources(source: FileSource, listing: Listing) -> tuple[dict[str, str], dict[str, str]]:
    """SHA-256 of every file read (manifest key -> digest), and of every sample's content
    (role/rel -> digest; for tables, of the whitespace-normalised text) to find duplicates."""
    if source.domain == "text":
        files = {key: sha256_file(root) for key, root in
                 zip(_keys(source, listing), listing.roots.values(), strict=True)}
        content = {f"{it.role}/{it.rel}": hashlib.sha256(
            " ".join((it.text or "").split()).encode()).hexdigest() for it in listing.items}
        return files, content
    files = {f"{it.role}/{it.rel}": sha256_file(_path(listing, it)) for it in listing.items}
    return files, files


def _show(listing: Listing, item: Item) -> str:
    """A sample as a message names it: role/path of a file, table:line of a row."""
    if item.text is not None:
        return f"{Path(listing.roots[item.role]).name}:{item.rel}"
    return f"{item.role}/{item.rel}"


def _shown(pairs: list[str]) -> str:
    return ", ".join(pairs[:SHOW]) + (" ..." if len(pairs) > SHOW else "")


def _duplicates(source: FileSource, listing: Listing, content: dict[str, str]) -> dict[str, Any]:
    """Apply the declaration's policies to samples of the same content (bytes; a row's
    whitespace-normalised text). Two classes for one sample are a labelling error; a test
    sample that is also a training (or unlabelled) sample inflates accuracy. Returns what the
    manifest records: per policy, the choice, how many were found and the keys dropped."""
    groups: dict[str, list[Item]] = defaultdict(list)
    for it in listing.items:
        groups[content[f"{it.role}/{it.rel}"]].append(it)
    what = "rows" if source.domain == "text" else "files"
    order = {f"{it.role}/{it.rel}": i for i, it in enumerate(listing.items)}

    conflicts = []  # the labelled training samples of each content under 2+ classes
    for group in groups.values():
        labelled = [it for it in group if it.role == "train" and it.label is not None]
        if len({it.label for it in labelled}) > 1:
            conflicts.append(labelled)
    policy = source.conflicting_labels
    shown = _shown([f"{_show(listing, g[0])} ({g[0].label}) = {_show(listing, other)} "
                    f"({other.label})" for g in conflicts
                    for other in [next(it for it in g if it.label != g[0].label)]])
    if conflicts and policy == "refuse":
        raise FileTaskError(
            f"{source.where}.train: {len(conflicts)} {what} appear under two classes (same "
            f"content): {shown}; correct their labels, or set {source.where}.conflicting_labels:"
            " drop (leave out every copy) or first (keep the first one's label)")
    dropped = [f"{it.role}/{it.rel}" for g in conflicts for it in g
               if policy == "drop" or it.label != g[0].label]
    if conflicts:
        logger.warning("warning: %s.train: %d %s appear under two classes (%s); "
                       "conflicting_labels: %s left out %d %s", source.where, len(conflicts),
                       what, shown, policy, len(dropped), what)
    record: dict[str, Any] = {"conflicting_labels": {
        "policy": policy, "found": len(conflicts),
        "dropped": sorted(dropped, key=order.__getitem__)}}

    gone = set(dropped)
    leaks: list[tuple[Item, Item]] = []  # (test sample, the training one it equals)
    for group in groups.values():
        kept = [it for it in group if f"{it.role}/{it.rel}" not in gone]
        other = next((it for it in kept if it.role != "test"), None)
        if other is not None:
            leaks += [(it, other) for it in kept if it.role == "test"]
    policy = source.test_duplicates or TEST_DUPLICATES[source.domain]
    shown = _shown([f"{_show(listing, t)} = {_show(listing, o)}" for t, o in leaks])
    found = (f"{source.where}: {len(leaks)} test {what} are also in train or unlabelled "
             f"(same content): {shown}")
    if leaks and policy == "refuse":
        raise FileTaskError(f"{found}; remove them from one side, or set {source.where}."
                            "test_duplicates: drop (leave them out of test) or warn (keep them)")
    test_dropped = [f"{t.role}/{t.rel}" for t, _ in leaks] if policy == "drop" else []
    if leaks and len(test_dropped) == len(listing.of("test")):
        raise FileTaskError(f"{found}; every test sample is one, so test_duplicates: drop "
                            "leaves no test set")
    if leaks and policy == "warn":
        logger.warning("warning: %s; kept (test_duplicates: warn); test_duplicates: drop leaves "
                       "them out of test", found)
    elif leaks:
        logger.warning("warning: %s; left out of test (test_duplicates: drop)", found)
    record["test_duplicates"] = {"policy": policy, "found": len(leaks),
                                 "dropped": sorted(test_dropped, key=order.__getitem__)}
    return record


def _without(listing: Listing, dropped: set[str]) -> Listing:
    """The listing less the samples that fetch left out (manifest ``duplicates``)."""
    if not dropped:
        return listing
    items = [it for it in listing.items if f"{it.role}/{it.rel}" not in dropped]
    return Listing(listing.classes, items, listing.ignored, listing.roots)


# --------------------------------------------------------------------------- decoding


def _decode_all(source: FileSource, listing: Listing, digests: Mapping[str, str],
                refetch: str) -> tuple[list[Any], list[tuple[str, str]]]:
    """Decode every sample from bytes whose SHA-256 matches the manifest; collect failures."""
    if source.domain == "text":
        for key, root in zip(_keys(source, listing), listing.roots.values(), strict=True):
            if sha256_file(root) != digests[key]:
                raise FileTaskError(f"{source.where}: {key} changed since fetch; {refetch}")
        return [it.text or "" for it in listing.items], []
    decode = _ImageDecoder(source) if source.domain == "image" else _AudioDecoder(source)
    out, bad = [], []
    for it in listing.items:
        key = f"{it.role}/{it.rel}"
        try:
            data = _path(listing, it).read_bytes()
        except OSError as err:
            bad.append((key, err.strerror or str(err)))
            continue
        if hashlib.sha256(data).hexdigest() != digests[key]:
            raise FileTaskError(f"{source.where}: {key} changed since fetch; {refetch}")
        try:
            out.append(decode(data, key))
        except Exception as err:  # noqa: BLE001 - every decoder's failure is a named, unreadable file
            reason = _OBJECT_REPR.sub("", f"{type(err).__name__}: {err}")  # PIL names a BytesIO
            bad.append((key, " ".join(reason.split())[:200]))
    return out, bad


def _stack(source: FileSource, x: list[Any]) -> np.ndarray:
    if source.domain == "text":
        return np.array(x, dtype=np.str_)
    return np.stack(x)


class _ImageDecoder:
    """Bytes -> uint8 [C, S, S]: EXIF rotation, transparency onto white, shorter side resized
    and centre-cropped (the aspect ratio is kept; nothing is stretched)."""

    def __init__(self, source: FileSource) -> None:
        self.size, self.mode = source.image_size, "L" if source.channels == 1 else "RGB"

    def __call__(self, data: bytes, name: str) -> np.ndarray:
        from PIL import Image, ImageOps

        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            image = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image.alpha_composite(rgba)
        image = ImageOps.fit(image.convert(self.mode), (self.size, self.size),
                             method=Image.Resampling.BICUBIC)
        array = np.asarray(image, dtype=np.uint8)
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy()


class _AudioDecoder:
    """Bytes -> float32 [T] (semibench.audio_io, the one audio loader): mono, resampled to the
    declared rate, the first ``seconds`` (zero-padded at the end), clipped to [-1, 1]."""

    def __init__(self, source: FileSource) -> None:
        self.convert = ClipConverter(source.seconds, sample_rate=source.sample_rate)

    def __call__(self, data: bytes, name: str) -> np.ndarray:
        return self.convert.load(data, name)


# --------------------------------------------------------------------------- declaration

#: name -> declaration of every task declared from files in this process
_DECLARED: dict[str, FileSource] = {}


def declare(name: str, source: FileSource) -> None:
    """Register ``name`` as a task read from files (again: with a new declaration)."""
    if name not in _DECLARED:
        if name in TASKS:
            raise FileTaskError(f"{source.where}: {name!r} is a built-in task; give yours "
                                "another name")
        if not _NAME.fullmatch(name):
            raise FileTaskError(f"{source.where}: the task name {name!r} must be lower-case "
                                "letters, digits and _ (it names folders and job wildcards)")
        with registering_from(f"files {source.where}"):
            TASKS.register(name)(type(f"FileTask_{name}", (FileTask,), {"name": name}))
    _DECLARED[name] = source


def declare_file_tasks(tasks: Mapping[str, Mapping[str, Any]],
                       base_dir: str | Path | None = None) -> None:
    """Declare a config's ``from_files`` tasks and check them against their files (paths,
    layout, classes, label budgets); raises ``FileTaskError``. Runs in the config check.
    Relative paths are read from ``base_dir`` (the config file's folder; None: the working
    directory)."""
    for name, settings in tasks.items():
        if "from_files" not in settings:
            if name in _DECLARED:
                raise FileTaskError(f"tasks.{name}: not a built-in task; declare its data with "
                                    "from_files")
            continue
        source = FileSource.from_dict(dict(settings["from_files"]), f"tasks.{name}.from_files",
                                      base_dir)
        declare(name, source)
        task = create_task(name)
        check_budgets(source, cached_listing(source),
                      list(settings.get("num_labels", task.label_budgets)), f"tasks.{name}")


def file_tasks_environment(tasks: Mapping[str, Mapping[str, Any]],
                           base_dir: str | Path | None = None) -> str:
    """The value of ``$SEMIBENCH_FILE_TASKS`` for a checked config: name -> the declaration as
    written and the absolute folder its relative paths are read from (``base_dir``, else this
    process's working directory: a job may run elsewhere)."""
    base = str(Path(base_dir or ".").expanduser().resolve())
    return json.dumps({name: {"from_files": dict(settings["from_files"]), "base": base}
                       for name, settings in tasks.items() if "from_files" in settings},
                      sort_keys=True)


def declare_from_environment(environ: Mapping[str, str] = os.environ) -> None:
    """Declare the tasks a workflow handed to this ``semibench`` process (no config here)."""
    value = environ.get(FILE_TASKS_ENV)
    if not value:
        return
    for name, handed in json.loads(value).items():
        declare(name, FileSource.from_dict(handed["from_files"], f"tasks.{name}.from_files",
                                           handed["base"]))


def file_task_sources(tasks: Mapping[str, Mapping[str, Any]], name: str,
                      base_dir: str | Path | None = None) -> list[str]:
    """The folders and tables a workflow's fetch of ``name`` watches (absolute)."""
    return source_paths(FileSource.from_dict(dict(tasks[name]["from_files"]), name, base_dir))


__all__ = ["FILE_TASKS_ENV", "FileSource", "FileTask", "FileTaskError", "declare",
           "declare_file_tasks", "declare_from_environment", "file_task_sources",
           "file_tasks_environment"]
