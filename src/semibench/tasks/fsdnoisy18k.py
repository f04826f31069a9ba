"""FSDnoisy18k (Fonseca et al. 2019) from its Zenodo record: the clean subset is the fixed
labelled set, the noisy subset is unlabelled, as in USB.

Zenodo record 2529934 gives ``FSDnoisy18k.meta.zip`` (``train.csv``: ``fname``, ``label``,
``manually_verified``, ...; ``test.csv``: ``fname``, ``label``), ``FSDnoisy18k.audio_train.zip``
and ``FSDnoisy18k.audio_test.zip`` (PCM 16-bit 44.1 kHz mono, 0.3-30 s). In train, the 1,772
``manually_verified`` clips keep their label (the labelled set for every seed:
``fixed_labelled``) and the 15,813 noisy ones get -1 (unlabelled only; their web labels are
dropped). Classes are the 20 labels in alphabetical order. Clips are resampled to 16 kHz and
cut to their first 5 s (USB's maximum length) or zero-padded to it.

Deviations from USB, both forced by the source:

* USB reports 1,773 labelled clips; the source has 1,772 clean ones (1,772 + 15,813 = 17,585,
  the published train size, and USB's own unlabelled count is 15,813).
* FSDnoisy18k has no development split, so USB selected its checkpoint on the test set (USB
  issue #98). SemiBench holds out a fixed, class-stratified ``dev_per_class`` clips (5, i.e.
  100) of the official test set as the dev split and tests on the remaining 847: the labelled
  set stays exactly the source's clean subset, at the price of a slightly smaller test set.

USB: HuBERT-Base, lr 5e-4, layer decay 0.75, 5 s clips.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from semibench.tasks._audio import (
    SAMPLE_RATE,
    USB_AUDIO_TRAIN,
    ClipConverter,
    UsbAudioTask,
    check_counts,
    decode_members,
    read_csv_rows,
    read_files,
    take_clips,
)
from semibench.tasks._sources import Source, SourceDataError
from semibench.tasks.base import TASKS, read_manifest, write_prepared

CLASSES = (
    "Acoustic_guitar", "Bass_guitar", "Clapping", "Coin_(dropping)", "Crash_cymbal",
    "Dishes_and_pots_and_pans", "Engine", "Fart", "Fire", "Fireworks", "Glass", "Hi-hat",
    "Piano", "Rain", "Slam", "Squeak", "Tearing", "Walk_or_footsteps", "Wind", "Writing",
)  # fmt: skip

_ZENODO = "https://zenodo.org/records/2529934/files/"
META_ARCHIVE = Source(
    "FSDnoisy18k.meta.zip",
    "md5:96e27a4a63b7a2870522ddcedb5d8296",
    (_ZENODO + "FSDnoisy18k.meta.zip?download=1",),
)
TRAIN_ARCHIVE = Source(
    "FSDnoisy18k.audio_train.zip",
    "md5:34dc1d34ca44622af5bf439ceb6f0d55",
    (_ZENODO + "FSDnoisy18k.audio_train.zip?download=1",),
)
TEST_ARCHIVE = Source(
    "FSDnoisy18k.audio_test.zip",
    "md5:1ac73d70b4ef3f81900d98c261a832de",
    (_ZENODO + "FSDnoisy18k.audio_test.zip?download=1",),
)
DEV_SEED = 20240404


def dev_holdout(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Boolean mask: a fixed ``per_class`` samples of every class (the dev split)."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) <= per_class:
            raise SourceDataError(f"class {c} has {len(idx)} test clips; cannot hold out {per_class}")
        held[rng.choice(idx, size=per_class, replace=False)] = True
    return held


@TASKS.register("fsdnoisy18k")
class FsdNoisy18k(UsbAudioTask):
    name = "fsdnoisy18k"
    classes = CLASSES
    label_budgets = (1772,)
    fixed_labelled = True
    num_train = 17585
    backbone = "hubert_base"
    max_seconds = 5.0
    train = {**USB_AUDIO_TRAIN, "lr": 5e-4, "layer_decay": 0.75}
    source = (
        "FSDnoisy18k (Fonseca et al. 2019), Zenodo record 2529934 (meta, audio_train, "
        "audio_test zips); labelled = the manually verified clean train clips, unlabelled = "
        "the noisy train clips (labels dropped); dev = 5 clips per class of the official test "
        "set, test = the rest; 44.1 kHz resampled to 16 kHz mono, first 5 s"
    )
    archives: tuple[Source, ...] = (META_ARCHIVE, TRAIN_ARCHIVE, TEST_ARCHIVE)
    dev_per_class = 5
    expected_counts = {"train": 17585, "labelled": 1772, "test": 947}

    def prepare(self, raw_dir: Path, out_dir: Path) -> None:
        manifest = read_manifest(raw_dir)
        meta_zip, train_zip, test_zip = (Path(raw_dir) / a.filename for a in self.archives)
        meta = read_files(meta_zip, lambda n: PurePosixPath(n).name in ("train.csv", "test.csv"))
        train_name, train_csv = meta.file("train.csv", meta_zip)
        test_name, test_csv = meta.file("test.csv", meta_zip)
        train_rows = read_csv_rows(train_csv, ("fname", "label", "manually_verified"), train_name)
        test_rows = read_csv_rows(test_csv, ("fname", "label"), test_name)
        for name, rows in ((train_name, train_rows), (test_name, test_rows)):
            unknown = sorted({r["label"] for r in rows} - set(CLASSES))
            if unknown:
                raise SourceDataError(f"{name}: unknown label(s) {unknown}")
        converter = ClipConverter(self.max_seconds)
        arrays = {}
        for split, archive, rows in (
            ("train", train_zip, train_rows),
            ("test", test_zip, test_rows),
        ):
            contents = decode_members(
                archive, lambda n: n.lower().endswith(".wav"), converter, f"fsdnoisy18k {split}"
            )
            by_file = {PurePosixPath(n).name: clip for n, clip in contents.clips.items()}
            if len(by_file) != len(contents.clips):
                raise SourceDataError(f"{archive.name}: two members share a file name")
            x = take_clips(by_file, [r["fname"] for r in rows], converter.length, archive.name)
            y = np.array([CLASSES.index(r["label"]) for r in rows], dtype=np.int64)
            if split == "train":  # only the manually verified (clean) clips keep their label
                clean = np.array([r["manually_verified"].strip() == "1" for r in rows])
                y = np.where(clean, y, -1)
            arrays[split] = x, y
        test_x, test_y = arrays["test"]
        dev = dev_holdout(test_y, self.dev_per_class, DEV_SEED)
        train_y = arrays["train"][1]
        counts = {"train": len(train_y), "labelled": int((train_y >= 0).sum()), "test": len(test_y)}
        check_counts(self, counts, self.expected_counts)
        write_prepared(
            out_dir,
            task=self,
            train_x=arrays["train"][0],
            train_y=train_y,
            val_x=test_x[dev],
            val_y=test_y[dev],
            test_x=test_x[~dev],
            test_y=test_y[~dev],
            raw_checksums=manifest["files"],
            extra={
                "sample_rate": SAMPLE_RATE,
                "max_seconds": self.max_seconds,
                "labelled_set": "fixed",
                "num_labelled": counts["labelled"],
                "dev_from_test": [r["fname"] for r, d in zip(test_rows, dev, strict=True) if d],
                "expected_counts": self.expected_counts,
            },
        )


__all__ = ["CLASSES", "FsdNoisy18k", "dev_holdout"]
