"""IMDB movie reviews (Maas et al. 2011, "aclImdb") as USB uses them, from Stanford's tarball.

USB's protocol: per class (``neg``, ``pos``) the 12,500 official training reviews are shuffled
once; the first 11,500 are the training pool and the next 1,000 the development set used for
model selection (``val_x``/``val_y``, ``validation_source = "prepared"``); the test set is the
official 25,000 test reviews. So 23,000 / 2,000 / 25,000 (USB's docs/benchmark.md says 12,500
per class; the code and the released data use 11,500). The 50,000 ``unsup`` reviews are not
used, as in USB.

Source: ``aclImdb_v1.tar.gz`` at ai.stanford.edu, pinned by the SHA-256 that the Hugging Face
``imdb`` dataset script published (84,125,825 bytes; its widely published MD5 is
``7c2ac02c03563afcf9b574c7e56c153a``). The reviews are read straight from the tarball (no
extraction); the text is USB's: the review with every ``<br />`` tag and newline removed
(replaced by nothing, as USB's ``preprocess/preprocess_aclimdb.py`` does, so two words that
only a tag separated run together).

Deviations from USB (documented):

* The per-class shuffle uses a fixed seed of SemiBench's (``SELECT_SEED``); USB's own draw is
  not published, so the 11,500/1,000 selection differs from USB's files (same sizes).
* Every text is cut to its first ``max_chars`` characters (``semibench.tasks._text``).

The protocol shared with ``zhang15.py`` (USB's per-class train/dev selection, the training
settings, the prepared format) is the text family's base, ``semibench.tasks._text``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from semibench.archive import iter_members
from semibench.tasks._sources import Source, SourceDataError, fetch_sources
from semibench.tasks._text import UsbTextTask
from semibench.tasks.base import TASKS, read_manifest

# --------------------------------------------------------------------------- IMDB

ARCHIVE = Source(
    "aclImdb_v1.tar.gz",
    urls=("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",),
    known_hash="sha256:c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
    size=84_125_825,
)
IMDB_CLASSES = ("neg", "pos")
_REVIEW = re.compile(r"^aclImdb/(train|test)/(neg|pos)/(\d+)_(\d+)\.txt$")


def usb_review_text(review: str) -> str:
    """A review as USB stores it: ``<br />`` tags and newlines deleted."""
    return review.replace("<br />", "").replace("\n", "")


def read_aclimdb(path: Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """The labelled reviews of ``aclImdb_v1.tar.gz``: split -> (texts, labels), neg=0, pos=1,
    each split ordered by class and review id (the archive order does not matter)."""
    found: dict[str, list[tuple[int, int, str]]] = {"train": [], "test": []}
    for member in iter_members(path, _REVIEW.match):
        split, polarity, review_id, _ = _REVIEW.match(member.name).groups()  # type: ignore[union-attr]
        text = usb_review_text(member.file.read().decode("utf-8"))
        found[split].append((IMDB_CLASSES.index(polarity), int(review_id), text))
    out = {}
    for split, rows in found.items():
        if not rows:
            raise SourceDataError(f"{path}: no aclImdb/{split}/{{neg,pos}}/*.txt reviews found")
        rows.sort(key=lambda r: (r[0], r[1]))
        out[split] = ([r[2] for r in rows], np.array([r[0] for r in rows], dtype=np.int64))
    return out


@TASKS.register("imdb")
class Imdb(UsbTextTask):
    name = "imdb"
    classes = IMDB_CLASSES
    label_budgets = (20, 100)
    train_per_class = 11_500
    dev_per_class = 1000
    val_per_class = 1000  # the dev split's size per class (drawn by prepare, not per seed)
    num_train = 23_000
    train = UsbTextTask.usb_train(lr=5e-5, layer_decay=0.75)
    source = (
        "IMDB Large Movie Review Dataset v1.0 (Maas et al. 2011), "
        "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz; USB's per-class "
        "selection of 11,500 train + 1,000 dev reviews from the official training set, "
        "official 25,000-review test set"
    )

    def fetch(self, raw_dir: Path) -> None:
        fetch_sources(self, [ARCHIVE], raw_dir)

    def prepare(self, raw_dir: Path, out_dir: Path) -> None:
        manifest = read_manifest(raw_dir)
        splits = read_aclimdb(raw_dir / ARCHIVE.filename)
        texts, labels = splits["train"]
        self.write(out_dir, manifest, texts, labels, splits["test"])
