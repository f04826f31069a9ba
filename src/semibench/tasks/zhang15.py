"""The text classification sets of Zhang, Zhao & LeCun (2015) that USB uses: AG News, Amazon
Review (full, 5 stars), Yahoo! Answers (10 topics) and Yelp Review (full, 5 stars).

Source format (each ``<name>_csv.tgz`` holds ``<name>_csv/{train.csv,test.csv,readme.txt}`` and,
for AG News and Yahoo! Answers, ``classes.txt``): one CSV row per sample, every field in double
quotes, ``""`` for a quote inside a field, and newlines inside a field written as the two
characters backslash-``n``. The first column is the class index, 1-based; the other columns are
text fields. The text of a sample is the fields USB takes, joined here with a space (empty
fields skipped, ``\\n`` turned back into newlines):

* AG News: title, description;
* Amazon Review: review title, review text;
* Yahoo! Answers: question title, question content (the CSV's third text column, the best
  answer, is left out: USB's ``read_TextClassificationDatasets`` reads columns 1 and 2);
* Yelp Review: review text.

USB's protocol: per class, the official training rows are shuffled once; the first N are the
training pool and the next M the development set used for model selection (``val_x``/``val_y``,
``validation_source = "prepared"``); the test set is the official one. Sizes (train / dev /
test): AG News 100,000 / 10,000 / 7,600; Amazon 250,000 / 25,000 / 65,000; Yahoo 500,000 /
50,000 / 60,000; Yelp 250,000 / 25,000 / 50,000.

Archives: the fast.ai S3 copies of Zhang's tarballs (``s3.amazonaws.com/fast-ai-nlp``; the
original Google Drive folder needs a browser confirmation for large files). Pins:

* Yahoo! Answers and Yelp Review: SHA-256 published by the Hugging Face ``datasets`` scripts
  (``yahoo_answers_topics``, ``yelp_review_full``) for exactly these URLs.
* AG News and Amazon Review: no SHA-256 is published for these files; they are pinned by the
  MD5 listed for the same URLs in third-party loaders, and every archive is also checked
  against fast.ai's own ``checks.txt`` (file size and MD5 of the first MiB).

Deviations from USB (documented): the per-class shuffle uses SemiBench's fixed seed (USB's
selection is not published; same sizes), and texts are cut to ``max_chars`` characters (see
``semibench.tasks.aclimdb``). USB splits each line on ``","`` instead of parsing the CSV, so
its texts glue title and body together with no space, keep ``\\n`` and doubled quotes as
written and, for Yahoo! Answers, lose the content's last character (the ``[:-1]`` meant for
the closing quote); we parse the CSV and join with a space. USB's label budgets, backbone and
training settings are kept.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from semibench.archive import iter_members, verify_archive
from semibench.tasks._sources import Source, SourceDataError, fetch_sources
from semibench.tasks._text import UsbTextTask
from semibench.tasks.base import TASKS, read_manifest

FAST_AI = "https://s3.amazonaws.com/fast-ai-nlp/"
#: CSV fields can be long (Yahoo! answers); the csv module's default limit is 128 KiB
_FIELD_LIMIT = 1 << 24


@dataclass(frozen=True)
class ZhangSource:
    archive: Source
    #: the folder inside the tarball
    folder: str
    #: the text columns after the class index
    fields: tuple[str, ...]
    #: whether the tarball has a ``classes.txt`` (AG News and Yahoo! Answers do)
    has_classes_file: bool
    #: how many of ``fields``, from the first, make the text (None: all of them)
    text_fields: int | None = None


SOURCES: dict[str, ZhangSource] = {
    "ag_news": ZhangSource(
        Source("ag_news_csv.tgz", urls=(FAST_AI + "ag_news_csv.tgz",), known_hash=
                "md5:2c2d85915f1ca34b29e754ce3b403c81",
                size=11_784_419, head_md5="b86f328f4dbd072486591cb7a5644dcd"),
        "ag_news_csv", ("title", "description"), True),
    "amazon_review": ZhangSource(
        Source("amazon_review_full_csv.tgz", urls=(FAST_AI + "amazon_review_full_csv.tgz",), known_hash=
                "md5:289723722b64d337a40f809edd29d0f0",
                size=643_695_014, head_md5="4a1196cf0adaea22f4bc3f592cddde90"),
        "amazon_review_full_csv", ("title", "text"), False),
    "yahoo_answers": ZhangSource(
        Source("yahoo_answers_csv.tgz", urls=(FAST_AI + "yahoo_answers_csv.tgz",), known_hash=
                "sha256:2d4277855faf8b35259009425fa8f7fe1888b5644b47165508942d000f4c96ae",
                size=319_476_345, head_md5="0632a0d236ef3a529c0fa4429b339f68"),
        "yahoo_answers_csv", ("question_title", "question_content", "best_answer"), True,
        text_fields=2),
    "yelp_review": ZhangSource(
        Source("yelp_review_full_csv.tgz", urls=(FAST_AI + "yelp_review_full_csv.tgz",), known_hash=
                "sha256:56006b0a17a370f1e366504b1f2c3e3754e4a3dda17d3e718a885c552869a559",
                size=196_146_755, head_md5="1efd84215ea3e30d90e4c33764b889db"),
        "yelp_review_full_csv", ("text",), False),
}


def join_fields(fields: list[str]) -> str:
    """One text from the CSV text fields: unescape ``\\n``, drop empty fields, join by a space."""
    parts = (f.replace("\\n", "\n").strip() for f in fields)
    return " ".join(p for p in parts if p)


def iter_csv_rows(
    path: Path, member: str, num_fields: int, num_classes: int, with_text: bool = True,
    text_fields: int | None = None,
) -> Iterator[tuple[int, str | None]]:
    """Stream ``member`` of the tarball as ``(0-based label, text or None)`` rows, checking
    the column count and the class index of every row; the text joins the first
    ``text_fields`` text columns (all if None)."""
    last = 1 + (num_fields if text_fields is None else text_fields)
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    with closing(iter_members(path, member.__eq__)) as members:
        for found in members:
            reader = csv.reader(io.TextIOWrapper(found.file, encoding="utf-8", newline=""))
            for row in reader:
                if len(row) != num_fields + 1:
                    raise SourceDataError(f"{path}:{member} line {reader.line_num}: expected "
                                     f"{num_fields + 1} columns, got {len(row)}")
                try:
                    label = int(row[0]) - 1
                except ValueError:
                    label = -1
                if not 0 <= label < num_classes:
                    raise SourceDataError(f"{path}:{member} line {reader.line_num}: class index "
                                     f"{row[0]!r} is not in 1..{num_classes}")
                yield label, (join_fields(row[1:last]) if with_text else None)
            return
    raise SourceDataError(f"{path}: the archive has no {member}")


def read_member_text(path: Path, member: str) -> str | None:
    """The text of one small member (None if the archive has none of that name)."""
    with closing(iter_members(path, member.__eq__)) as members:
        for found in members:
            return found.file.read().decode("utf-8")
    return None


class ZhangTask(UsbTextTask):
    """A Zhang et al. (2015) CSV dataset under USB's NLP protocol."""

    train_per_class: ClassVar[int] = 50_000
    dev_per_class: ClassVar[int] = 5000
    val_per_class: ClassVar[int] = 5000  # the dev split's size per class (drawn by prepare)

    @property
    def spec(self) -> ZhangSource:
        return SOURCES[self.name]

    def fetch(self, raw_dir: Path) -> None:
        fetch_sources(self, [self.spec.archive], raw_dir)

    def _check_classes(self, path: Path) -> None:
        member = f"{self.spec.folder}/classes.txt"
        text = read_member_text(path, member)
        if text is None:
            if self.spec.has_classes_file:
                raise SourceDataError(f"{path}: the archive has no {member}")
            return
        names = tuple(line.strip() for line in text.splitlines() if line.strip())
        if names != self.classes:
            raise SourceDataError(f"{path}:{member} lists classes {names}, expected {self.classes}")

    def prepare(self, raw_dir: Path, out_dir: Path) -> None:
        manifest = read_manifest(raw_dir)
        path = raw_dir / self.spec.archive.filename
        verify_archive(path)  # the reads below stop after the members they need
        self._check_classes(path)
        fields, folder = len(self.spec.fields), self.spec.folder
        # two passes over train.csv: labels first, then only the selected rows' texts, so
        # that millions of unselected rows are never held in memory
        labels = np.fromiter(
            (y for y, _ in iter_csv_rows(path, f"{folder}/train.csv", fields, self.num_classes,
                                         with_text=False)),
            dtype=np.int64,
        )
        train_idx, dev_idx = self.select(labels)
        wanted = np.zeros(len(labels), dtype=bool)
        wanted[train_idx] = wanted[dev_idx] = True
        texts: dict[int, str] = {}
        used = self.spec.text_fields
        rows = iter_csv_rows(path, f"{folder}/train.csv", fields, self.num_classes,
                             text_fields=used)
        for i, (_, text) in enumerate(rows):
            if wanted[i]:
                texts[i] = text or ""
        test = list(iter_csv_rows(path, f"{folder}/test.csv", fields, self.num_classes,
                                  text_fields=used))
        test_texts = [t or "" for _, t in test]
        test_y = np.array([y for y, _ in test], dtype=np.int64)
        self.write(out_dir, manifest, texts, labels, (test_texts, test_y))


def _source_line(title: str, name: str) -> str:
    return (f"{title} (Zhang, Zhao & LeCun 2015), {SOURCES[name].archive.urls[0]}; USB's per-class "
            "train/dev selection from the official training set, official test set")


@TASKS.register("ag_news")
class AgNews(ZhangTask):
    name = "ag_news"
    classes = ("World", "Sports", "Business", "Sci/Tech")
    label_budgets = (40, 200)
    train_per_class = 25_000
    dev_per_class = 2500
    val_per_class = 2500
    num_train = 100_000
    train = UsbTextTask.usb_train(lr=5e-5, layer_decay=0.65)
    source = _source_line("AG's News Topic Classification", "ag_news")


@TASKS.register("amazon_review")
class AmazonReview(ZhangTask):
    name = "amazon_review"
    classes = ("1", "2", "3", "4", "5")
    label_budgets = (250, 1000)
    num_train = 250_000
    train = UsbTextTask.usb_train(lr=1e-5, layer_decay=0.75)
    source = _source_line("Amazon Review Full Score", "amazon_review")


@TASKS.register("yahoo_answers")
class YahooAnswers(ZhangTask):
    name = "yahoo_answers"
    classes = (
        "Society & Culture", "Science & Mathematics", "Health", "Education & Reference",
        "Computers & Internet", "Sports", "Business & Finance", "Entertainment & Music",
        "Family & Relationships", "Politics & Government",
    )  # fmt: skip
    label_budgets = (500, 2000)
    num_train = 500_000
    train = UsbTextTask.usb_train(lr=1e-4, layer_decay=0.65)
    source = _source_line("Yahoo! Answers Topic Classification", "yahoo_answers")


@TASKS.register("yelp_review")
class YelpReview(ZhangTask):
    name = "yelp_review"
    classes = ("1", "2", "3", "4", "5")
    label_budgets = (250, 1000)
    num_train = 250_000
    train = UsbTextTask.usb_train(lr=5e-5, layer_decay=0.75)
    source = _source_line("Yelp Review Full", "yelp_review")
