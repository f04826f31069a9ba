"""SUPERB keyword spotting (Speech Commands v0.01, Warden 2017) as USB uses it: the ten
keywords only, ``_silence_`` and ``_unknown_`` removed.

USB loads ``datasets.load_dataset("superb", "ks")``, whose loader reads the two TensorFlow
archives and splits them like this, which ``prepare`` reproduces:

* ``speech_commands_v0.01.tar.gz`` (``<word>/<speaker>_nohash_<n>.wav``, 16 kHz, <= 1 s):
  files listed in ``validation_list.txt`` are dev; files listed in neither that nor
  ``testing_list.txt`` are train (the listed test files are not used);
* ``speech_commands_test_set_v0.01.tar.gz``: the canonical test set, every file is test.

SUPERB maps the 20 other words to ``_unknown_`` and cuts ``_background_noise_`` into
``_silence_`` clips; USB then drops both, leaving 18,538 / 2,577 / 2,567 clips of the ten
keywords (``yes no up down left right on off stop go``, SUPERB's label order). Clips are
zero-padded to 1 s. The archives are the long-lived TensorFlow downloads (Google Cloud
Storage, with the ``download.tensorflow.org`` alias as the fallback), checked against the
SHA-256 values of the Hugging Face ``superb`` loader (the first also pinned by torchaudio).
USB: 50 / 100 labels (5 / 10 per class; ``results/README`` says 5 / 20, contradicting the
configs), wav2vec 2.0 Base, lr 5e-5, layer decay 0.75, 1 s clips.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from semibench.tasks._audio import (
    USB_AUDIO_TRAIN,
    ClipConverter,
    UsbAudioTask,
    decode_members,
    take_clips,
)
from semibench.tasks._sources import Source
from semibench.tasks.base import TASKS

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")

_GCS = "https://storage.googleapis.com/download.tensorflow.org/data/"
_TF = "http://download.tensorflow.org/data/"
TRAIN_ARCHIVE = Source(
    filename="speech_commands_v0.01.tar.gz",
    known_hash="sha256:743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
    urls=(_GCS + "speech_commands_v0.01.tar.gz", _TF + "speech_commands_v0.01.tar.gz"),
)
TEST_ARCHIVE = Source(
    filename="speech_commands_test_set_v0.01.tar.gz",
    known_hash="sha256:baa084f6b62c91de660ff0588ae4dfc4e4d534aa99ac0e5f406cba75836cbd00",
    urls=(
        _GCS + "speech_commands_test_set_v0.01.tar.gz",
        _TF + "speech_commands_test_set_v0.01.tar.gz",
    ),
)


def keyword_of(member: str) -> str | None:
    """The keyword of ``[<root>/]<word>/<file>.wav`` if ``<word>`` is one of the ten."""
    path = PurePosixPath(member)
    if path.suffix != ".wav" or len(path.parts) < 2 or path.name.startswith("._"):
        return None
    return path.parts[-2] if path.parts[-2] in KEYWORDS else None


def read_list(data: bytes) -> set[str]:
    """A Speech Commands split list: one ``<word>/<file>.wav`` per line."""
    return {line.strip() for line in data.decode("utf-8").splitlines() if line.strip()}


@TASKS.register("superb_ks")
class SuperbKs(UsbAudioTask):
    name = "superb_ks"
    classes = KEYWORDS
    label_budgets = (50, 100)
    num_train = 18538
    backbone = "wav2vec2_base"
    max_seconds = 1.0
    train = {**USB_AUDIO_TRAIN, "lr": 5e-5, "layer_decay": 0.75}
    source = (
        "Speech Commands v0.01 (Warden 2017) as in SUPERB KS: speech_commands_v0.01.tar.gz "
        "(train = neither list, dev = validation_list.txt) and "
        "speech_commands_test_set_v0.01.tar.gz (test); the ten keywords only (USB drops "
        "_silence_ and _unknown_); 16 kHz, zero-padded to 1 s"
    )
    archives: tuple[Source, Source] = (TRAIN_ARCHIVE, TEST_ARCHIVE)
    expected_counts = {"train": 18538, "val": 2577, "test": 2567}

    def read_splits(self, raw_dir: Path, converter: ClipConverter) -> tuple[dict, dict]:
        train_archive, test_archive = (raw_dir / a.filename for a in self.archives)
        lists = ("validation_list.txt", "testing_list.txt")
        main = decode_members(
            train_archive,
            lambda n: keyword_of(n) is not None,
            converter,
            "superb_ks train/dev",
            keep=lambda n: PurePosixPath(n).name in lists,
        )
        (dev_name, dev_bytes), (_, test_bytes) = (main.file(n, train_archive) for n in lists)
        root = dev_name[: -len(lists[0])]  # list entries are relative to the archive's root
        dev, listed_test = read_list(dev_bytes), read_list(test_bytes)
        relative = {n: n[len(root) :] for n in main.clips if n.startswith(root)}
        names = {
            "train": sorted(
                n for n, r in relative.items() if r not in dev and r not in listed_test
            ),
            "val": sorted(n for n, r in relative.items() if r in dev),
        }
        test = decode_members(
            test_archive, lambda n: keyword_of(n) is not None, converter, "superb_ks test"
        )
        arrays = {}
        for split, chosen in names.items():
            x = take_clips(main.clips, chosen, converter.length, train_archive.name)
            arrays[split] = x, np.array([KEYWORDS.index(keyword_of(n)) for n in chosen])
        chosen = sorted(test.clips)
        x = take_clips(test.clips, chosen, converter.length, test_archive.name)
        arrays["test"] = x, np.array([KEYWORDS.index(keyword_of(n)) for n in chosen])
        return arrays, {}


__all__ = ["KEYWORDS", "SuperbKs", "keyword_of", "read_list"]
