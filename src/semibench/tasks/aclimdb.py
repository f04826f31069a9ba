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
* Every text is cut to its first ``max_chars`` characters (3,000) because the prepared format
  stores fixed-width strings. 512 BERT word pieces (USB's ``max_length``) rarely span more than
  ~2,500 characters of English, so the encoder sees (almost) what USB's does; back-translation
  (``semibench.backtranslate``) keeps USB's last-1,024-characters rule on the stored text.
  Fixed-width UCS-4 strings are costly for the big sets: Yahoo! Answers' 500,000 training
  texts take ~6 GB in ``data.npz`` (a ragged UTF-8 format would need ~1/5 of that).

This module also holds the pieces shared with ``zhang15.py``: the pinned ``Archive``, its
download, corruption-safe streaming of tar members and USB's per-class train/dev selection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from semibench.archive import iter_members
from semibench.tasks._sources import Source, fetch_sources
from semibench.tasks.base import TASKS, Task, read_manifest, write_prepared

# --------------------------------------------------------------------------- shared pieces


def select_per_class(
    labels: np.ndarray, num_classes: int, train_per_class: int, dev_per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """USB's ``select_data``: per class, shuffle; the first ``train_per_class`` samples are
    training data and the next ``dev_per_class`` development data. Returns sorted indices."""
    rng = np.random.default_rng(seed)
    train, dev = [], []
    need = train_per_class + dev_per_class
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if len(idx) < need:
            raise ValueError(f"class {c} has {len(idx)} training samples; USB's selection takes "
                             f"{train_per_class} train + {dev_per_class} dev per class")
        idx = rng.permutation(idx)
        train.append(idx[:train_per_class])
        dev.append(idx[train_per_class:need])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(dev))


def capped_strings(texts: list[str], max_chars: int) -> tuple[np.ndarray, int]:
    """Fixed-width unicode array of the texts cut to ``max_chars``; also how many were cut."""
    cut = sum(len(t) > max_chars for t in texts)
    return np.array([t[:max_chars] for t in texts], dtype=np.str_), int(cut)


class UsbTextTask(Task):
    """USB's NLP protocol (``config/usb_nlp``): BERT-base fine-tuned with AdamW, batch 8 (+8
    unlabelled), 102,400 iterations with 5,120 warm-up, evaluation every 2,048 on the source's
    dev split, max_length 512, no EMA (ema_m 0), separate forward passes (use_cat False).
    Subclasses set the classes, sizes, label budgets, lr and layer_decay."""

    domain = "text"
    validation_source = "prepared"
    #: the strong view is a back-translation (``semibench backtranslate``), as in USB
    backtranslation: ClassVar[bool] = True
    backbone = "bert_base_uncased"
    backbone_args: ClassVar[dict[str, Any]] = {"max_length": 512}
    augment: ClassVar[dict[str, Any]] = {}
    #: per class: training pool and development (validation) samples, USB's ``select_data``
    train_per_class: ClassVar[int]
    dev_per_class: ClassVar[int]
    #: texts are cut to this many characters (fixed-width storage; see the module docstring)
    max_chars: ClassVar[int] = 3000
    #: the per-class shuffle of the train/dev selection (fixed; the same for every SSL seed)
    select_seed: ClassVar[int] = 20220901

    @staticmethod
    def usb_train(lr: float, layer_decay: float) -> dict[str, Any]:
        return {
            "iterations": 102_400,
            "eval_every": 2048,
            "batch_size": 8,
            "uratio": 1,
            "eval_batch_size": 8,
            "optimizer": "adamw",
            "lr": lr,
            "layer_decay": layer_decay,
            "weight_decay": 5e-4,
            "warmup_iterations": 5120,
            "ema_m": 0.0,
            "use_cat": False,
        }

    def select(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of USB's training pool and dev set among the source's training rows."""
        return select_per_class(labels, self.num_classes, self.train_per_class,
                                self.dev_per_class, self.select_seed)

    def write(
        self,
        out_dir: Path,
        manifest: dict[str, Any],
        train_texts: Mapping[int, str] | Sequence[str],
        train_labels: np.ndarray,
        test: tuple[list[str], np.ndarray],
    ) -> None:
        """Write the prepared data: ``train_texts[i]`` must exist for every selected row i."""
        train_idx, dev_idx = self.select(train_labels)
        train_x, cut_train = capped_strings([train_texts[i] for i in train_idx], self.max_chars)
        val_x, cut_val = capped_strings([train_texts[i] for i in dev_idx], self.max_chars)
        test_x, cut_test = capped_strings(test[0], self.max_chars)
        write_prepared(
            out_dir,
            task=self,
            train_x=train_x,
            train_y=train_labels[train_idx],
            val_x=val_x,
            val_y=train_labels[dev_idx],
            test_x=test_x,
            test_y=test[1],
            raw_checksums=manifest["files"],
            extra={
                "selection": {"train_per_class": self.train_per_class,
                              "dev_per_class": self.dev_per_class, "seed": self.select_seed},
                "max_chars": self.max_chars,
                "num_cut_to_max_chars": {"train": cut_train, "val": cut_val, "test": cut_test},
            },
        )


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
            raise ValueError(f"{path}: no aclImdb/{split}/{{neg,pos}}/*.txt reviews found")
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
