"""The text family's base: USB's NLP protocol (``config/usb_nlp``), shared by IMDB
(``aclimdb.py``) and the Zhang et al. (2015) CSV sets (``zhang15.py``): per class the source's
training rows are shuffled once, the first ``train_per_class`` are the training pool and the
next ``dev_per_class`` the development set used for model selection (USB's ``select_data``).

Deviation from USB (documented):

* Every text is cut to its first ``max_chars`` characters (3,000) because the prepared format
  stores fixed-width strings. 512 BERT word pieces (USB's ``max_length``) rarely span more than
  ~2,500 characters of English, so the encoder sees (almost) what USB's does; back-translation
  (``semibench.backtranslate``) keeps USB's last-1,024-characters rule on the stored text.
  Fixed-width UCS-4 strings are costly for the big sets: Yahoo! Answers' 500,000 training
  texts take ~6 GB in ``data.npz`` (a ragged UTF-8 format would need ~1/5 of that).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from semibench.tasks._sources import SourceDataError
from semibench.tasks.base import Task, write_prepared


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
            raise SourceDataError(f"class {c} has {len(idx)} training samples; USB's selection takes "
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


__all__ = ["UsbTextTask", "capped_strings", "select_per_class"]
