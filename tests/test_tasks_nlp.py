"""USB's NLP tasks on tiny archives built here in the real source formats: an aclImdb-like tree
in a .tar.gz, and Zhang et al.'s quoted CSVs in a .tgz. Fetch goes through the mirror with the
pinned hash replaced by the fixture's; prepare must select USB's per-class train/dev sets."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from semibench.archive import CorruptArchiveError
from semibench.io import MIRROR_ENV, ChecksumError, sha256_file
from semibench.tasks import aclimdb, create_task, load_prepared, zhang15
from semibench.tasks._sources import FetchError, Source
from semibench.tasks._text import select_per_class
from semibench.tasks.aclimdb import Imdb
from semibench.tasks.zhang15 import SOURCES, AgNews, AmazonReview, YahooAnswers, YelpReview

# --------------------------------------------------------------------------- fixtures


def write_tgz(path: Path, files: dict[str, str]) -> Path:
    """A gzipped tar holding ``files`` (name -> text), in the given order."""
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def imdb_review(split: str, polarity: str, i: int) -> str:
    """Line breaks as in the source: ``<br />`` tags, and a newline (a few reviews have one)."""
    return f"{split} {polarity} review {i}: great, \"really\" <br /><br />fine,\nünïcode."


def usb_text(review: str) -> str:
    """USB's preprocess_aclimdb.py: ``<br />`` and newlines deleted, nothing put instead."""
    return review.replace("<br />", "").replace("\n", "")


def build_aclimdb(path: Path, train_per_class: int = 5, test_per_class: int = 3) -> Path:
    files = {"aclImdb/README": "Large Movie Review Dataset v1.0\n", "aclImdb/imdb.vocab": "the\n"}
    # the archive order is not the id order: prepare must not depend on it
    for split, n in (("test", test_per_class), ("train", train_per_class)):
        for polarity in ("pos", "neg"):
            for i in reversed(range(n)):
                rating = 8 if polarity == "pos" else 2
                files[f"aclImdb/{split}/{polarity}/{i}_{rating}.txt"] = imdb_review(split,
                                                                                  polarity, i)
        files[f"aclImdb/{split}/labeledBow.feat"] = "0 0:1\n"
        files[f"aclImdb/{split}/urls_pos.txt"] = "http://www.imdb.com/title/tt0453418/\n"
    for i in range(4):
        files[f"aclImdb/train/unsup/{i}_0.txt"] = f"unlabelled review {i}"
    files["aclImdb/train/pos/99_10.txt"] = "long " * 100  # 500 characters, cut to max_chars
    return write_tgz(path, files)


class TinyImdb(Imdb):
    train_per_class = 3
    dev_per_class = 2
    max_chars = 120


FIELDS = {"ag_news": 2, "amazon_review": 2, "yahoo_answers": 3, "yelp_review": 1}
#: the text columns USB reads (Yahoo!: title and content, not the best answer)
USED = {"ag_news": 2, "amazon_review": 2, "yahoo_answers": 2, "yelp_review": 1}
TINY = {
    name: type(f"Tiny{cls.__name__}", (cls,), {"train_per_class": 4, "dev_per_class": 1,
                                               "max_chars": 300})
    for name, cls in (("ag_news", AgNews), ("amazon_review", AmazonReview),
                      ("yahoo_answers", YahooAnswers), ("yelp_review", YelpReview))
}


def zhang_fields(name: str, split: str, label: int, i: int) -> list[str]:
    """Text fields with commas, doubled quotes and escaped newlines as in the originals."""
    fields = [f"{split} {label}-{i}, a title with \"quotes\"",
              f"body of {label}-{i}, with a comma\\nand an escaped newline",
              f"answer {label}-{i}"][: FIELDS[name]]
    if FIELDS[name] == 3 and i == 0:
        fields[1] = ""  # Yahoo! rows may lack the question content
    return fields


def zhang_csv(name: str, split: str, per_class: int, num_classes: int) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for i in range(per_class):  # rows interleave the classes, as in the originals
        for label in range(1, num_classes + 1):
            writer.writerow([str(label), *zhang_fields(name, split, label, i)])
    return buffer.getvalue()


def build_zhang(path: Path, name: str, train_per_class: int = 7, test_per_class: int = 2,
                classes: tuple[str, ...] | None = None) -> Path:
    task = TINY[name]()
    folder = SOURCES[name].folder
    files = {f"{folder}/readme.txt": "ORIGIN\n"}
    if SOURCES[name].has_classes_file or classes is not None:
        files[f"{folder}/classes.txt"] = "".join(c + "\n" for c in (classes or task.classes))
    files[f"{folder}/test.csv"] = zhang_csv(name, "test", test_per_class, task.num_classes)
    files[f"{folder}/train.csv"] = zhang_csv(name, "train", train_per_class, task.num_classes)
    return write_tgz(path, files)


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "mirror"
    folder.mkdir()
    monkeypatch.setenv(MIRROR_ENV, str(folder))
    return folder


def pin_imdb(monkeypatch: pytest.MonkeyPatch, archive: Path, **extra: object) -> None:
    monkeypatch.setattr(aclimdb, "ARCHIVE", Source(archive.name, f"sha256:{sha256_file(archive)}",
                                                   aclimdb.ARCHIVE.urls, **extra))


def pin_zhang(monkeypatch: pytest.MonkeyPatch, name: str, archive: Path) -> None:
    spec = SOURCES[name]
    pinned = Source(spec.archive.filename, f"sha256:{sha256_file(archive)}", spec.archive.urls)
    monkeypatch.setitem(zhang15.SOURCES, name, dataclasses.replace(spec, archive=pinned))


def no_prepared_output(out: Path) -> bool:
    return not (out / "data.npz").exists() and not (out / "meta.json").exists()


# --------------------------------------------------------------------------- USB settings


def test_registered_with_usb_settings() -> None:
    expected = {  # name: classes, budgets, train, dev per class, lr, layer_decay
        "imdb": (2, (20, 100), 11_500, 1000, 5e-5, 0.75),
        "ag_news": (4, (40, 200), 25_000, 2500, 5e-5, 0.65),
        "amazon_review": (5, (250, 1000), 50_000, 5000, 1e-5, 0.75),
        "yahoo_answers": (10, (500, 2000), 50_000, 5000, 1e-4, 0.65),
        "yelp_review": (5, (250, 1000), 50_000, 5000, 5e-5, 0.75),
    }
    for name, (c, budgets, n_train, n_dev, lr, decay) in expected.items():
        task = create_task(name)
        assert task.domain == "text" and task.num_classes == c
        assert task.label_budgets == budgets
        assert task.validation_source == "prepared" and task.backtranslation
        assert task.num_train == n_train * c and task.pool_size() == n_train * c
        assert (task.train_per_class, task.dev_per_class) == (n_train, n_dev)
        assert task.backbone == "bert_base_uncased"
        assert task.backbone_args == {"max_length": 512}
        t = task.train
        assert (t["lr"], t["layer_decay"], t["optimizer"]) == (lr, decay, "adamw")
        assert (t["iterations"], t["eval_every"], t["warmup_iterations"]) == (102_400, 2048, 5120)
        assert (t["batch_size"], t["uratio"], t["eval_batch_size"]) == (8, 1, 8)
        assert (t["weight_decay"], t["ema_m"], t["use_cat"]) == (5e-4, 0.0, False)
    assert create_task("yahoo_answers").classes[4] == "Computers & Internet"
    assert create_task("ag_news").classes == ("World", "Sports", "Business", "Sci/Tech")


def test_pins_are_real_checksums() -> None:
    assert aclimdb.ARCHIVE.known_hash.startswith("sha256:")
    assert aclimdb.ARCHIVE.urls[0].startswith("https://ai.stanford.edu/")
    for spec in SOURCES.values():
        algo, digest = spec.archive.known_hash.split(":")
        assert len(digest) == {"sha256": 64, "md5": 32}[algo]
        assert spec.archive.size and len(spec.archive.head_md5 or "") == 32


def test_select_per_class_is_usb_select_data() -> None:
    labels = np.repeat([0, 1, 2], 10)[np.random.default_rng(1).permutation(30)]
    train, dev = select_per_class(labels, 3, 6, 2, seed=5)
    assert np.bincount(labels[train]).tolist() == [6, 6, 6]
    assert np.bincount(labels[dev]).tolist() == [2, 2, 2]
    assert not set(train) & set(dev)
    again = select_per_class(labels, 3, 6, 2, seed=5)
    assert np.array_equal(train, again[0]) and np.array_equal(dev, again[1])
    assert not np.array_equal(train, select_per_class(labels, 3, 6, 2, seed=6)[0])
    with pytest.raises(ValueError, match="class 0 has 10 training samples"):
        select_per_class(labels, 3, 9, 2, seed=5)


# --------------------------------------------------------------------------- IMDB


def test_imdb_fetch_and_prepare(tmp_path: Path, mirror: Path, monkeypatch) -> None:
    archive = build_aclimdb(mirror / "aclImdb_v1.tar.gz")
    pin_imdb(monkeypatch, archive)
    task = TinyImdb()
    task.fetch(tmp_path / "raw")
    manifest = json.loads((tmp_path / "raw" / "manifest.json").read_text())
    assert manifest["files"] == {"aclImdb_v1.tar.gz": sha256_file(archive)}
    task.prepare(tmp_path / "raw", tmp_path / "prepared")
    data = load_prepared(tmp_path / "prepared")

    assert data.train_x.dtype.kind == "U" and data.train_x.ndim == 1
    assert np.bincount(data.train_y).tolist() == [3, 3]
    assert np.bincount(data.val_y).tolist() == [2, 2]
    assert np.bincount(data.test_y).tolist() == [3, 3]
    # every text is a review of its split and class as USB stores it; unsup reviews never enter
    source = {usb_text(imdb_review("train", p, i)): c for c, p in enumerate(("neg", "pos"))
              for i in range(5)}
    source["long " * 100] = 1
    for x, y in zip([*data.train_x, *data.val_x], [*data.train_y, *data.val_y], strict=True):
        full = next(s for s in source if s.startswith(x))
        assert source[full] == y and (x == full or len(x) == 120)
    assert not set(data.train_x) & set(data.val_x)
    assert sorted(data.test_x) == sorted(usb_text(imdb_review("test", p, i))
                                         for p in ("neg", "pos") for i in range(3))
    assert all(data.test_y[i] == ("pos" in x.split()[1]) for i, x in enumerate(data.test_x))
    assert data.test_x[0].endswith(': great, "really" fine,ünïcode.')
    assert not any("<br" in x or "\n" in x for x in [*data.train_x, *data.val_x, *data.test_x])
    meta = data.meta
    assert meta["num_val"] == 4 and meta["num_test"] == 6 and meta["num_train"] == 6
    assert meta["classes"] == ["neg", "pos"]
    assert meta["raw_checksums"] == manifest["files"]
    assert meta["selection"] == {"train_per_class": 3, "dev_per_class": 2,
                                 "seed": Imdb.select_seed}
    # the same raw file gives byte-identical prepared data
    task.prepare(tmp_path / "raw", tmp_path / "again")
    assert sha256_file(tmp_path / "again" / "data.npz") == meta["data_sha256"]


def test_imdb_checksum_mismatch_fetches_nothing(tmp_path: Path, mirror: Path, monkeypatch) -> None:
    archive = build_aclimdb(mirror / "aclImdb_v1.tar.gz")
    pin_imdb(monkeypatch, archive)
    archive.write_bytes(archive.read_bytes() + b"tampered")
    task = TinyImdb()
    with pytest.raises(FetchError, match="checksum does not match"):
        task.fetch(tmp_path / "raw")
    assert not (tmp_path / "raw" / "aclImdb_v1.tar.gz").exists()
    assert not (tmp_path / "raw" / "manifest.json").exists()
    with pytest.raises(FileNotFoundError):
        task.prepare(tmp_path / "raw", tmp_path / "prepared")
    assert no_prepared_output(tmp_path / "prepared")


def test_imdb_published_size_is_checked(tmp_path: Path, mirror: Path, monkeypatch) -> None:
    archive = build_aclimdb(mirror / "aclImdb_v1.tar.gz")
    pin_imdb(monkeypatch, archive, size=archive.stat().st_size + 1)
    with pytest.raises(FetchError, match="bytes, the source publishes"):
        TinyImdb().fetch(tmp_path / "raw")
    assert not (tmp_path / "raw" / "aclImdb_v1.tar.gz").exists()


def test_imdb_raw_file_damaged_after_fetch(tmp_path: Path, mirror: Path, monkeypatch) -> None:
    archive = build_aclimdb(mirror / "aclImdb_v1.tar.gz")
    pin_imdb(monkeypatch, archive)
    task = TinyImdb()
    task.fetch(tmp_path / "raw")
    raw = tmp_path / "raw" / "aclImdb_v1.tar.gz"
    raw.write_bytes(raw.read_bytes()[: raw.stat().st_size // 2])
    with pytest.raises(ChecksumError, match="corrupt or truncated"):
        task.prepare(tmp_path / "raw", tmp_path / "prepared")
    assert no_prepared_output(tmp_path / "prepared")


def test_imdb_truncated_archive_says_so(tmp_path: Path, mirror: Path, monkeypatch) -> None:
    """A truncated tarball that matches its pin (e.g. a broken mirror copy pinned by
    mistake) is still refused when it is read, with a message saying why."""
    full = build_aclimdb(tmp_path / "full.tar.gz").read_bytes()
    archive = mirror / "aclImdb_v1.tar.gz"
    archive.write_bytes(full[: len(full) * 2 // 3])
    pin_imdb(monkeypatch, archive)
    task = TinyImdb()
    task.fetch(tmp_path / "raw")
    with pytest.raises(CorruptArchiveError, match="truncated or corrupt.*fetch again"):
        task.prepare(tmp_path / "raw", tmp_path / "prepared")
    assert no_prepared_output(tmp_path / "prepared")


def test_imdb_too_few_reviews(tmp_path: Path, mirror: Path, monkeypatch) -> None:
    archive = build_aclimdb(mirror / "aclImdb_v1.tar.gz", train_per_class=3)
    pin_imdb(monkeypatch, archive)
    task = TinyImdb()
    task.fetch(tmp_path / "raw")
    with pytest.raises(ValueError, match="class 0 has 3 training samples"):
        task.prepare(tmp_path / "raw", tmp_path / "prepared")
    assert no_prepared_output(tmp_path / "prepared")


# --------------------------------------------------------------------------- Zhang et al.


@pytest.mark.parametrize("name", sorted(TINY))
def test_zhang_fetch_and_prepare(name: str, tmp_path: Path, mirror: Path, monkeypatch) -> None:
    archive = build_zhang(mirror / SOURCES[name].archive.filename, name)
    pin_zhang(monkeypatch, name, archive)
    task = TINY[name]()
    task.fetch(tmp_path / "raw")
    task.prepare(tmp_path / "raw", tmp_path / "prepared")
    data = load_prepared(tmp_path / "prepared")
    c = task.num_classes

    assert data.train_x.dtype.kind == "U" and data.train_x.shape == (4 * c,)
    assert np.bincount(data.train_y, minlength=c).tolist() == [4] * c
    assert np.bincount(data.val_y, minlength=c).tolist() == [1] * c
    assert np.bincount(data.test_y, minlength=c).tolist() == [2] * c
    assert data.meta["classes"] == list(task.classes)
    # USB's fields joined by a space, doubled quotes and commas kept, \n unescaped, empty
    # skipped
    for x, y in zip([*data.train_x, *data.val_x, *data.test_x],
                    [*data.train_y, *data.val_y, *data.test_y], strict=True):
        split = x.split()[0]
        i = int(x.split()[1].split("-")[1].rstrip(","))
        fields = zhang_fields(name, split, int(y) + 1, i)[: USED[name]]
        expected = " ".join(f.replace("\\n", "\n") for f in fields if f)
        assert x == expected[: task.max_chars]
    if FIELDS[name] >= 2:
        assert any("with a comma\nand an escaped newline" in x for x in data.train_x)
    assert all('a title with "quotes"' in x for x in data.train_x)
    assert not any("answer" in x for x in [*data.train_x, *data.val_x, *data.test_x])
    assert all(x.startswith("train ") for x in [*data.train_x, *data.val_x])
    assert all(x.startswith("test ") for x in data.test_x)
    assert not set(data.train_x) & set(data.val_x)
    assert data.meta["num_test"] == 2 * c and data.meta["num_val"] == c


def test_zhang_checksum_mismatch_and_truncation(tmp_path: Path, mirror: Path,
                                                monkeypatch) -> None:
    name = "ag_news"
    archive = build_zhang(mirror / SOURCES[name].archive.filename, name, train_per_class=60)
    pin_zhang(monkeypatch, name, archive)
    task = TINY[name]()
    # a mirror copy that is not the pinned file is refused
    good = archive.read_bytes()
    archive.write_bytes(good[:-10])
    with pytest.raises(FetchError, match="checksum does not match"):
        task.fetch(tmp_path / "raw")
    assert not (tmp_path / "raw" / "manifest.json").exists()
    # a truncated archive that matches its pin is refused when read, and says why
    pin_zhang(monkeypatch, name, archive)
    task.fetch(tmp_path / "raw")
    with pytest.raises(CorruptArchiveError, match="truncated or corrupt"):
        task.prepare(tmp_path / "raw", tmp_path / "prepared")
    assert no_prepared_output(tmp_path / "prepared")


def test_zhang_rejects_bad_rows_and_classes(tmp_path: Path, mirror: Path, monkeypatch) -> None:
    name = "yahoo_answers"
    folder = SOURCES[name].folder
    archive = build_zhang(mirror / SOURCES[name].archive.filename, name,
                          classes=("Health",) * 10)
    pin_zhang(monkeypatch, name, archive)
    task = TINY[name]()
    task.fetch(tmp_path / "raw")
    with pytest.raises(ValueError, match="classes.txt lists classes"):
        task.prepare(tmp_path / "raw", tmp_path / "prepared")
    assert no_prepared_output(tmp_path / "prepared")

    good = zhang_csv(name, "train", 7, 10)
    for bad_row, message in (('"3","only two"\n', "expected 4 columns, got 2"),
                             ('"11","a","b","c"\n', "class index '11' is not in 1..10")):
        archive = write_tgz(mirror / SOURCES[name].archive.filename, {
            f"{folder}/classes.txt": "".join(c + "\n" for c in task.classes),
            f"{folder}/test.csv": zhang_csv(name, "test", 2, 10),
            f"{folder}/train.csv": good + bad_row,
        })
        pin_zhang(monkeypatch, name, archive)
        (tmp_path / "raw" / archive.name).unlink()
        task.fetch(tmp_path / "raw")
        with pytest.raises(ValueError, match=f"train.csv line 71: {message}"):
            task.prepare(tmp_path / "raw", tmp_path / "prepared")
        assert no_prepared_output(tmp_path / "prepared")


def test_zhang_archive_without_train_csv(tmp_path: Path, mirror: Path, monkeypatch) -> None:
    name = "yelp_review"
    folder = SOURCES[name].folder
    archive = write_tgz(mirror / SOURCES[name].archive.filename,
                        {f"{folder}/test.csv": zhang_csv(name, "test", 2, 5)})
    pin_zhang(monkeypatch, name, archive)
    task = TINY[name]()
    task.fetch(tmp_path / "raw")
    with pytest.raises(ValueError, match="has no yelp_review_full_csv/train.csv"):
        task.prepare(tmp_path / "raw", tmp_path / "prepared")
    assert no_prepared_output(tmp_path / "prepared")
