"""Helpers shared by the audio sources of the real USB benchmark (``esc50``, ``gtzan``,
``urbansound8k``, ``superb_ks``, ``fsdnoisy18k``): checksummed downloads with mirrors, reading
members straight out of tar/zip archives (nothing is extracted to disk, so there is no
path-traversal risk and no second copy of the data), and decoding with the one audio loader
(``semibench.audio_io``: libsndfile) into what every source gets: mono (channel mean), 16 kHz
(``torchaudio``'s band-limited sinc with a Hann window), float32 clipped to [-1, 1], and a fixed
length: the first ``max_seconds`` of the clip, zero-padded at the end. The fixed length is USB's ``max_length_seconds`` of the task; USB's
collator likewise keeps the first ``max_length`` samples for evaluation, but its training
crops are drawn from the whole clip, which the ``[N, T]`` prepared format cannot hold (this
only matters for clips longer than the limit: GTZAN tracks, which are cut into segments
instead, and some FSDnoisy18k clips).
"""

from __future__ import annotations

import csv
import io
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from semibench.archive import CorruptArchiveError, iter_members
from semibench.audio_io import SAMPLE_RATE, AudioDecodeError, ClipConverter, decode_audio
from semibench.tasks._sources import Source, SourceDataError, fetch_sources
from semibench.tasks.base import Task, read_manifest, write_prepared

#: USB's audio training protocol (config/usb_audio): AdamW, weight decay 2e-5, batch 8, uratio 1,
#: 100 x 1,024 iterations, evaluation every 2,048 with batch 16, 5,120 warm-up iterations, no
#: EMA (ema_m 0; MeanTeacher/SimMatch override it), separate forward passes (use_cat False)
USB_AUDIO_TRAIN: dict[str, Any] = {
    "iterations": 102_400,
    "eval_every": 2_048,
    "batch_size": 8,
    "uratio": 1,
    "eval_batch_size": 16,
    "optimizer": "adamw",
    "weight_decay": 2e-5,
    "warmup_iterations": 5_120,
    "ema_m": 0.0,
    "use_cat": False,
}


def usb_audio_augment(max_seconds: float) -> dict[str, Any]:
    """USB's audio views for waveform backbones: crops of the task's maximum length."""
    return {
        "sample_rate": SAMPLE_RATE,
        "crop_seconds": max_seconds,
        "features": "waveform",
        "strong_effects": "usb",
    }


# --------------------------------------------------------------------------- archives


def read_csv_rows(data: bytes, required: Sequence[str], source: str) -> list[dict[str, str]]:
    """Rows of a CSV file (UTF-8, header line) that must have the ``required`` columns."""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    missing = sorted(set(required) - set(reader.fieldnames or ()))
    if missing:
        raise SourceDataError(f"{source}: missing column(s) {missing}; found {reader.fieldnames}")
    return list(reader)


# --------------------------------------------------------------------------- decoding


@dataclass
class ArchiveContents:
    """What one pass over an archive gave: converted clips, raw metadata files, and the audio
    members that failed to decode but that the source is known to carry broken."""

    clips: dict[str, np.ndarray]
    files: dict[str, bytes]
    skipped: list[str]

    def file(self, suffix: str, archive: Path) -> tuple[str, bytes]:
        """The one kept file named ``suffix`` or ending in ``/suffix``."""
        name = find_member(list(self.files), suffix, archive)
        return name, self.files[name]


def decode_members(
    archive: Path,
    is_audio: Callable[[str], bool],
    convert: Callable[[np.ndarray, int], np.ndarray],
    desc: str,
    *,
    keep: Callable[[str], bool] = lambda name: False,
    tolerate: Callable[[str], bool] = lambda name: False,
) -> ArchiveContents:
    """One pass over an archive: decode and convert every ``is_audio`` member and keep the
    bytes of every ``keep`` member (metadata). An undecodable member raises unless
    ``tolerate`` accepts its name (a source's known-bad file), then it is listed as skipped.
    """
    from tqdm import tqdm

    contents = ArchiveContents({}, {}, [])
    members = iter_members(archive, lambda n: is_audio(n) or keep(n))
    for name, _, handle in tqdm(members, desc=desc, unit="file", file=sys.stderr, disable=None):
        data = handle.read()
        if keep(name):
            contents.files[name] = data
            continue
        try:
            samples, rate = decode_audio(data, name)
        except AudioDecodeError as err:
            if tolerate(name):
                contents.skipped.append(name)
                continue
            raise AudioDecodeError(f"{archive.name}: {err}") from err
        contents.clips[name] = convert(samples, rate)
    return contents


def read_files(archive: Path, keep: Callable[[str], bool]) -> ArchiveContents:
    """One pass over an archive keeping the bytes of the ``keep`` members (metadata)."""
    return decode_members(archive, lambda n: False, lambda x, rate: x, archive.name, keep=keep)


def take_clips(
    clips: dict[str, np.ndarray], names: Sequence[str], length: int, source: str
) -> np.ndarray:
    """Stack the named clips into ``[N, length]`` float32, removing them from ``clips`` as it
    goes (so the peak memory stays near one copy of the data)."""
    missing = [n for n in names if n not in clips]
    if missing:
        raise CorruptArchiveError(
            f"{source}: {len(missing)} file(s) listed in the metadata are missing from the "
            f"archive, e.g. {missing[:3]}"
        )
    out = np.empty((len(names), length), dtype=np.float32)
    for i, name in enumerate(names):
        out[i] = clips.pop(name)
    return out


def check_counts(task: Task, counts: dict[str, int], expected: dict[str, int]) -> None:
    """Warn (do not fail) when split sizes differ from the published ones (USB's, or the
    source's where USB's are off): a different archive version or a parsing change shows up
    here, while a fixture or a deliberate subset still prepares."""
    differ = {k: (counts.get(k), v) for k, v in expected.items() if counts.get(k) != v}
    if differ:
        warnings.warn(
            f"{task.name}: split sizes (got, published) differ: {differ}",
            RuntimeWarning,
            stacklevel=2,
        )


# --------------------------------------------------------------------------- ESC-50


def find_member(names: Sequence[str], suffix: str, archive: Path) -> str:
    """The one member named ``suffix`` or ending in ``/suffix`` (archives differ in their
    top-level folder, e.g. ``ESC-50-master/`` or ``ESC-50-<commit>/``)."""
    found = [n for n in names if n == suffix or n.endswith("/" + suffix)]
    if len(found) != 1:
        raise CorruptArchiveError(f"{archive}: expected one {suffix!r}, found {found[:5]}")
    return found[0]


class UsbAudioTask(Task):
    """What USB's audio tasks share: the source's development split validates (no validation
    drawn from the pool), clips are cut to ``max_seconds`` at 16 kHz with USB's audio views
    (``usb_audio_augment``), fetching downloads ``archives`` (or the one ``archive``), and
    ``prepare`` is one template: a source only says how its decoded clips fall into splits
    (:meth:`read_splits`)."""

    domain = "audio"
    val_per_class = 0
    validation_source = "prepared"
    max_seconds: ClassVar[float]
    expected_counts: ClassVar[dict[str, int]]
    #: clips of ``max_seconds`` cut from each decoded file (GTZAN: ten per track)
    segments_per_track: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "max_seconds" in cls.__dict__ and "augment" not in cls.__dict__:
            cls.augment = usb_audio_augment(cls.max_seconds)

    def remote_files(self) -> tuple[Source, ...]:
        return tuple(getattr(self, "archives", ())) or (self.archive,)

    def fetch(self, raw_dir: Path) -> None:
        fetch_sources(self, self.remote_files(), raw_dir)

    def prepare(self, raw_dir: Path, out_dir: Path) -> None:
        manifest = read_manifest(raw_dir)
        converter = ClipConverter(self.max_seconds * self.segments_per_track)
        arrays, extra = self.read_splits(Path(raw_dir), converter)
        self.write_splits(out_dir, arrays, manifest, extra)

    def read_splits(
        self, raw_dir: Path, converter: ClipConverter
    ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, Any]]:
        """split -> (clips ``[N, T]``, labels) for train, val and test, and what ``meta.json``
        records about them."""
        raise NotImplementedError

    def write_splits(
        self,
        out_dir: Path,
        arrays: dict[str, tuple[np.ndarray, np.ndarray]],
        manifest: dict[str, Any],
        extra: dict[str, Any],
    ) -> None:
        """Check the split sizes against the published ones, then write the prepared data
        (train, the source's dev split as val, test)."""
        check_counts(self, {k: len(v[1]) for k, v in arrays.items()}, self.expected_counts)
        write_prepared(
            out_dir,
            task=self,
            train_x=arrays["train"][0],
            train_y=arrays["train"][1],
            val_x=arrays["val"][0],
            val_y=arrays["val"][1],
            test_x=arrays["test"][0],
            test_y=arrays["test"][1],
            raw_checksums=manifest["files"],
            extra={
                "sample_rate": SAMPLE_RATE,
                "max_seconds": self.max_seconds,
                "expected_counts": self.expected_counts,
                **extra,
            },
        )


class FoldCsvAudioTask(UsbAudioTask):
    """A source whose one archive holds the clips and a metadata CSV that gives each clip's
    file, fold and class (ESC-50, UrbanSound8K): whole folds make train, dev and test. A
    source declares only where things are (class attributes)."""

    archive: ClassVar[Source]
    #: the CSV's path below the archive's top-level folder
    metadata: ClassVar[str]
    #: an audio member's path below that folder, from the row's ``{file}`` and ``{fold}``
    member: ClassVar[str]
    #: a member is audio if ``/<name>`` contains this and it ends in ``.wav``
    audio_folder: ClassVar[str]
    file_column: ClassVar[str]
    label_column: ClassVar[str]
    class_column: ClassVar[str]
    folds: ClassVar[dict[str, tuple[int, ...]]]

    def is_audio(self, name: str) -> bool:
        return self.audio_folder in f"/{name}" and name.lower().endswith(".wav")

    def read_splits(
        self, raw_dir: Path, converter: ClipConverter
    ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, Any]]:
        archive = raw_dir / self.archive.filename
        contents = decode_members(archive, self.is_audio, converter, self.name,
                                  keep=lambda n: n.endswith(self.metadata))
        csv_name, csv_data = contents.file(self.metadata, archive)
        root = csv_name[: -len(self.metadata)]
        columns = (self.file_column, "fold", self.label_column, self.class_column)
        rows = read_csv_rows(csv_data, columns, csv_name)
        for row in rows:
            label = int(row[self.label_column])
            if not 0 <= label < len(self.classes) or self.classes[label] != row[self.class_column]:
                raise CorruptArchiveError(
                    f"{csv_name}: {row[self.file_column]} has {self.label_column} {label} and "
                    f"{self.class_column} {row[self.class_column]!r}, which does not match the "
                    "class list"
                )
        arrays = {}
        for split, folds in self.folds.items():
            chosen = [r for r in rows if int(r["fold"]) in folds]
            names = [root + self.member.format(file=r[self.file_column], fold=r["fold"])
                     for r in chosen]
            x = take_clips(contents.clips, names, converter.length, archive.name)
            arrays[split] = x, np.array([int(r[self.label_column]) for r in chosen],
                                        dtype=np.int64)
        return arrays, {"folds": {k: list(v) for k, v in self.folds.items()}}


__all__ = [
    "FoldCsvAudioTask",
    "UsbAudioTask",
    "ArchiveContents",
    "CorruptArchiveError",
    "AudioDecodeError",
    "ClipConverter",
    "SAMPLE_RATE",
    "USB_AUDIO_TRAIN",
    "check_counts",
    "decode_audio",
    "decode_members",
    "find_member",
    "read_csv_rows",
    "read_files",
    "take_clips",
    "usb_audio_augment",
]
