"""The vision tasks' fetchers and preparers on tiny fixtures in each source's real format.

Every fixture is built here, in the source's own layout (CIFAR python batches in a .tar.gz,
SVHN .mat files, STL-10 binaries, the EuroSAT ImageFolder zip, a MedMNIST npz, a Semi-Aves
tree with ssl-evaluation list files), served through the ``$SEMIBENCH_MIRROR`` directory with
the pinned hash monkeypatched to the fixture's. Nothing touches the network.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import struct
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semibench.archive import CorruptArchiveError
from semibench.augment import build_views
from semibench.io import MIRROR_ENV, ChecksumError, sha256_file
from semibench.splits import make_split
from semibench.tasks import cifar as cifar_mod
from semibench.tasks import create_task, load_prepared
from semibench.tasks import eurosat as eurosat_mod
from semibench.tasks import medmnist as medmnist_mod
from semibench.tasks import semi_aves as aves_mod
from semibench.tasks import stl10 as stl10_mod
from semibench.tasks import svhn as svhn_mod
from semibench.tasks._sources import FetchError, Source
from semibench.train.config import TrainConfig

VISION_TASKS = ("cifar10", "cifar100", "svhn", "stl10", "eurosat", "tissuemnist", "semi_aves")
UNREACHABLE = ("http://127.0.0.1:9/never-used",)  # the mirror must serve every fixture


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes what Python 2's cPickle wrote for the CIFAR batches: every ``str``/``bytes`` as a
    Python 2 byte string (``SHORT_BINSTRING``/``BINSTRING``) and numpy's old module path."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_py2_str(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str


def _py2_style_pickle(obj: dict[str, object]) -> bytes:
    """A CIFAR batch exactly as the python version stores it (a Python 2 protocol-2 pickle)."""
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    data = buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"_codecs" not in data and b"numpy._core" not in data
    return data


def _pin(monkeypatch: pytest.MonkeyPatch, owner: object, attr: str, path: Path,
         digest: str | None = None) -> None:
    """Point ``owner.attr`` (a ``Source``) at the mirror copy of ``path`` with its SHA-256."""
    remote: Source = getattr(owner, attr)
    pinned = dataclasses.replace(remote, filename=path.name, urls=UNREACHABLE,
                                 known_hash="sha256:" + (digest or sha256_file(path)))
    monkeypatch.setattr(owner, attr, pinned)


def _fetch_prepare(name: str, tmp_path: Path) -> tuple[Path, Path]:
    task = create_task(name)
    raw, out = tmp_path / "raw" / name, tmp_path / "prepared" / name
    task.fetch(raw)
    task.prepare(raw, out)
    return raw, out


def _check_prepared(out: Path, name: str, *, channels: int, side: int, unlabelled: int = 0):
    """The prepared-format checks every task must pass; returns the loaded data."""
    task = create_task(name)
    data = load_prepared(out)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["name"] == name and meta["domain"] == "image"
    assert meta["classes"] == list(task.classes) and meta["num_classes"] == task.num_classes
    assert meta["data_sha256"] == sha256_file(out / "data.npz")
    manifest = json.loads((out.parent.parent / "raw" / name / "manifest.json").read_text())
    assert meta["raw_checksums"] == manifest["files"]
    splits = [("train", data.train_x, data.train_y), ("test", data.test_x, data.test_y)]
    if data.val_x is not None:
        splits.append(("val", data.val_x, data.val_y))
    for split, x, y in splits:
        assert x.dtype == np.uint8 and x.ndim == 4, split
        assert x.shape[1:] == (channels, side, side), split
        assert y.dtype == np.int64 and len(x) == len(y), split
        lowest = -1 if split == "train" else 0
        assert y.min() >= lowest and y.max() < task.num_classes, split
    assert int((data.train_y == -1).sum()) == unlabelled
    assert meta["num_train_unlabelled_only"] == unlabelled
    counts = np.bincount(data.train_y[data.train_y >= 0], minlength=task.num_classes)
    assert meta["train_class_counts"] == counts.tolist()
    return data


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "mirror"
    folder.mkdir()
    monkeypatch.setenv(MIRROR_ENV, str(folder))
    return folder


# --------------------------------------------------------------------------- CIFAR


def _cifar10_archive(folder: Path, per_class: int = 1) -> tuple[Path, np.ndarray, np.ndarray]:
    """5 training batches of ``per_class`` images per class each, and a 2-per-class test."""
    rng = _rng(1)
    members, train_x, train_y = {}, [], []
    for i in range(1, 6):
        labels = np.repeat(np.arange(10), per_class)
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        members[f"cifar-10-batches-py/data_batch_{i}"] = _py2_style_pickle(
            {"batch_label": f"training batch {i} of 5", "labels": labels.tolist(), "data": data,
             "filenames": [f"img{j}.png" for j in range(len(labels))]})
        train_x.append(data)
        train_y.append(labels)
    test_labels = np.repeat(np.arange(10), 2)
    members["cifar-10-batches-py/test_batch"] = _py2_style_pickle(
        {"labels": test_labels.tolist(),
         "data": rng.integers(0, 256, (20, 3072), dtype=np.uint8)})
    members["cifar-10-batches-py/batches.meta"] = _py2_style_pickle(
        {"label_names": list(cifar_mod.CIFAR10_CLASSES), "num_vis": 3072})
    path = _tar_gz(folder / "cifar-10-python.tar.gz", members)
    return path, np.concatenate(train_x), np.concatenate(train_y)


def _cifar100_archive(folder: Path) -> Path:
    rng = _rng(2)
    train_labels = np.repeat(np.arange(100), 3)
    members = {
        "cifar-100-python/train": _py2_style_pickle(
            {"fine_labels": train_labels.tolist(), "coarse_labels": (train_labels // 5).tolist(),
             "data": rng.integers(0, 256, (300, 3072), dtype=np.uint8)}),
        "cifar-100-python/test": _py2_style_pickle(
            {"fine_labels": list(range(100)), "coarse_labels": [0] * 100,
             "data": rng.integers(0, 256, (100, 3072), dtype=np.uint8)}),
        "cifar-100-python/meta": _py2_style_pickle(
            {"fine_label_names": list(cifar_mod.CIFAR100_CLASSES),
             "coarse_label_names": ["c"] * 20}),
    }
    return _tar_gz(folder / "cifar-100-python.tar.gz", members)


def test_cifar10_fetch_prepare(mirror, tmp_path, monkeypatch):
    path, train_x, train_y = _cifar10_archive(mirror, per_class=2)
    _pin(monkeypatch, cifar_mod.Cifar10, "archive", path)
    raw, out = _fetch_prepare("cifar10", tmp_path)
    data = _check_prepared(out, "cifar10", channels=3, side=32)
    assert len(data.train_x) == 100 and len(data.test_x) == 20
    assert np.bincount(data.train_y).tolist() == [10] * 10
    assert np.array_equal(data.train_x, train_x.reshape(-1, 3, 32, 32))  # batch order, CHW
    assert np.array_equal(data.train_y, train_y)
    assert (raw / "cifar-10-python.tar.gz").is_file()


def test_cifar100_fetch_prepare(mirror, tmp_path, monkeypatch):
    _pin(monkeypatch, cifar_mod.Cifar100, "archive", _cifar100_archive(mirror))
    _, out = _fetch_prepare("cifar100", tmp_path)
    data = _check_prepared(out, "cifar100", channels=3, side=32)
    assert np.bincount(data.train_y).tolist() == [3] * 100
    assert data.test_y.tolist() == list(range(100))


def test_cifar_refuses_code_in_a_pickle(mirror, tmp_path, monkeypatch):
    """A batch whose pickle would call a function is refused before anything runs."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    _, _, _ = _cifar10_archive(mirror)
    with tarfile.open(mirror / "cifar-10-python.tar.gz") as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive if m.isfile()}
    members["cifar-10-batches-py/data_batch_3"] = pickle.dumps({b"data": Evil()}, protocol=2)
    path = _tar_gz(mirror / "cifar-10-python.tar.gz", members)
    _pin(monkeypatch, cifar_mod.Cifar10, "archive", path)
    with pytest.raises(CorruptArchiveError, match="refusing to load"):
        _fetch_prepare("cifar10", tmp_path)
    assert not marker.exists()
    assert not (tmp_path / "prepared" / "cifar10" / "data.npz").exists()


def test_cifar_wrong_class_names_are_rejected(mirror, tmp_path, monkeypatch):
    path = _cifar100_archive(mirror)
    with tarfile.open(path) as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive if m.isfile()}
    names = list(cifar_mod.CIFAR100_CLASSES)
    names[0], names[1] = names[1], names[0]
    members["cifar-100-python/meta"] = _py2_style_pickle({"fine_label_names": names})
    _pin(monkeypatch, cifar_mod.Cifar100, "archive", _tar_gz(path, members))
    with pytest.raises(ValueError, match="class names"):
        _fetch_prepare("cifar100", tmp_path)


# --------------------------------------------------------------------------- SVHN


def _svhn_mat(path: Path, n: int, seed: int) -> np.ndarray:
    from scipy.io import savemat

    rng = _rng(seed)
    labels = np.resize(np.arange(1, 11), n).astype(np.uint8)  # 10 is the digit 0
    savemat(path, {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                   "y": labels.reshape(-1, 1)})
    return labels


def test_svhn_fetch_prepare(mirror, tmp_path, monkeypatch):
    sizes = {"train": 20, "extra": 30, "test": 10}
    for i, (split, n) in enumerate(sizes.items()):
        path = mirror / f"{split}_32x32.mat"
        _svhn_mat(path, n, seed=i)
        files = dict(svhn_mod.FILES)
        files[split] = dataclasses.replace(files[split], urls=UNREACHABLE,
                                           known_hash="sha256:" + sha256_file(path))
        monkeypatch.setattr(svhn_mod, "FILES", files)
    _, out = _fetch_prepare("svhn", tmp_path)
    data = _check_prepared(out, "svhn", channels=3, side=32)
    assert len(data.train_x) == 50 and len(data.test_x) == 10  # train + extra
    assert np.bincount(data.train_y).tolist() == [5] * 10
    assert data.test_y[:10].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]  # label 10 -> 0
    from scipy.io import loadmat

    x = loadmat(mirror / "test_32x32.mat")["X"]
    assert np.array_equal(data.test_x[3], x[:, :, :, 3].transpose(2, 0, 1))  # HWC N -> CHW


# --------------------------------------------------------------------------- STL-10


def _stl10_archive(folder: Path) -> tuple[Path, np.ndarray]:
    """STL-10's binaries: images written column-major (C, W, H), labels 1..10."""
    rng = _rng(3)
    train = rng.integers(0, 256, (30, 3, 96, 96), dtype=np.uint8)  # [N, C, H, W]
    test = rng.integers(0, 256, (10, 3, 96, 96), dtype=np.uint8)
    unlabelled = rng.integers(0, 256, (7, 3, 96, 96), dtype=np.uint8)

    def binary(x: np.ndarray) -> bytes:
        return np.ascontiguousarray(x.transpose(0, 1, 3, 2)).tobytes()

    members = {
        "stl10_binary/train_X.bin": binary(train),
        "stl10_binary/train_y.bin": (np.repeat(np.arange(10), 3) + 1).astype(np.uint8).tobytes(),
        "stl10_binary/test_X.bin": binary(test),
        "stl10_binary/test_y.bin": (np.arange(10) + 1).astype(np.uint8).tobytes(),
        "stl10_binary/unlabeled_X.bin": binary(unlabelled),
        "stl10_binary/class_names.txt": "\n".join(stl10_mod.CLASSES).encode() + b"\n",
        "stl10_binary/fold_indices.txt": b"0 1 2\n",
    }
    return _tar_gz(folder / "stl10_binary.tar.gz", members), np.concatenate([train, unlabelled])


def test_stl10_fetch_prepare(mirror, tmp_path, monkeypatch):
    path, expected = _stl10_archive(mirror)
    monkeypatch.setattr(stl10_mod, "ARCHIVE", dataclasses.replace(
        stl10_mod.ARCHIVE, urls=UNREACHABLE, known_hash="sha256:" + sha256_file(path)))
    _, out = _fetch_prepare("stl10", tmp_path)
    data = _check_prepared(out, "stl10", channels=3, side=96, unlabelled=7)
    assert np.array_equal(data.train_x, expected)  # column-major storage undone
    assert data.train_y[:30].tolist() == np.repeat(np.arange(10), 3).tolist()
    assert (data.train_y[30:] == -1).all() and (data.test_y >= 0).all()
    # the unlabelled images only ever join the unlabelled set
    split = make_split(data.train_y, task="stl10", num_classes=10, num_labels=10,
                       val_per_class=1, seed=0)
    assert set(range(30, 37)) <= set(split.unlabelled)
    assert not set(range(30, 37)) & (set(split.labelled) | set(split.validation))


# --------------------------------------------------------------------------- EuroSAT


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, quality=95)
    return buffer.getvalue()


def _eurosat_zip(folder: Path, per_class: dict[str, int]) -> Path:
    """The canonical layout ``2750/<Class>/<Class>_<i>.jpg``; image i is a flat grey of 20*i
    so the order can be read back from the pixels."""
    path = folder / "EuroSAT.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in eurosat_mod.CLASSES:
            archive.writestr(f"2750/{name}/", b"")
            for i in range(1, per_class.get(name, 5) + 1):
                image = np.full((64, 64, 3), 20 * i, dtype=np.uint8)
                fmt = "PNG" if name == "Forest" else "JPEG"
                suffix = ".png" if fmt == "PNG" else ".jpg"
                archive.writestr(f"2750/{name}/{name}_{i}{suffix}", _encode(image, fmt))
    return path


def test_eurosat_fetch_prepare(mirror, tmp_path, monkeypatch):
    path = _eurosat_zip(mirror, {"AnnualCrop": 10, "Pasture": 6})
    monkeypatch.setattr(eurosat_mod, "ARCHIVE", dataclasses.replace(
        eurosat_mod.ARCHIVE, urls=UNREACHABLE, known_hash="sha256:" + sha256_file(path)))
    _, out = _fetch_prepare("eurosat", tmp_path)
    data = _check_prepared(out, "eurosat", channels=3, side=64)
    # per class: first int(0.8 n) in ImageFolder (sorted file name) order are the pool
    pool = np.bincount(data.train_y, minlength=10).tolist()
    test = np.bincount(data.test_y, minlength=10).tolist()
    assert pool == [8, 4, 4, 4, 4, 4, 4, 4, 4, 4] and test == [2, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    grey = lambda x: np.round(x[:, 0, 32, 32] / 20).astype(int).tolist()  # noqa: E731
    assert grey(data.train_x[data.train_y == 0]) == [1, 10, 2, 3, 4, 5, 6, 7]
    assert grey(data.test_x[data.test_y == 0]) == [8, 9]
    assert grey(data.train_x[data.train_y == 1]) == [1, 2, 3, 4]  # the PNG class, exact
    assert np.array_equal(data.train_x[data.train_y == 1][:, :, 0, 0],
                          np.repeat(np.array([[20], [40], [60], [80]]), 3, axis=1))


# --------------------------------------------------------------------------- TissueMNIST


def _medmnist_npz(folder: Path) -> Path:
    rng = _rng(4)
    arrays = {}
    for split, per_class in (("train", 4), ("val", 2), ("test", 3)):
        labels = np.repeat(np.arange(8), per_class).reshape(-1, 1).astype(np.uint8)
        arrays[f"{split}_images"] = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = labels
    path = folder / "tissuemnist.npz"
    np.savez_compressed(path, **arrays)
    return path


def test_tissuemnist_fetch_prepare(mirror, tmp_path, monkeypatch):
    path = _medmnist_npz(mirror)
    monkeypatch.setattr(medmnist_mod, "ARCHIVE", dataclasses.replace(
        medmnist_mod.ARCHIVE, urls=UNREACHABLE, known_hash="sha256:" + sha256_file(path)))
    _, out = _fetch_prepare("tissuemnist", tmp_path)
    data = _check_prepared(out, "tissuemnist", channels=1, side=28)
    assert (len(data.train_x), len(data.val_x), len(data.test_x)) == (32, 16, 24)
    assert np.bincount(data.val_y).tolist() == [2] * 8
    with np.load(path) as source:
        assert np.array_equal(data.val_x[:, 0], source["val_images"])
    task = create_task("tissuemnist")
    split = make_split(data.train_y, task=task.name, num_classes=8, num_labels=8,
                       val_per_class=task.val_per_class, seed=0,
                       validation_source=task.validation_source)
    assert split.validation == [] and len(split.unlabelled) == 32  # the whole pool


# --------------------------------------------------------------------------- Semi-Aves


def _semi_aves_tree(root: Path, *, as_archives: bool = False) -> dict[str, list[str]]:
    """ssl-evaluation's list files and challenge-style image folders with varied sizes."""
    rng = _rng(5)
    lists: dict[str, list[str]] = {"l_train.txt": [], "val.txt": [], "u_train_in.txt": [],
                                   "test.txt": []}
    images: dict[str, bytes] = {}

    def add(rel: str, label: int, listname: str) -> None:
        h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        images[rel] = _encode(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "JPEG")
        lists[listname].append(f"{rel} {label}")

    for c in range(3):
        for i in range(3):
            add(f"trainval_images/{c}/{i}.jpg", c, "l_train.txt")
        add(f"trainval_images/{c}/3.jpg", c, "val.txt")
        add(f"test/{10 + c}.jpg", c, "test.txt")
    for i in range(5):
        add(f"u_train_in/{i}.jpg", -1, "u_train_in.txt")
    root.mkdir(parents=True, exist_ok=True)
    for name, lines in lists.items():
        (root / name).write_text("\n".join(lines) + "\n")
    for folder in aves_mod.IMAGE_DIRS:
        members = {rel: data for rel, data in images.items() if rel.startswith(folder + "/")}
        if as_archives:
            _tar_gz(root / f"{folder}.tar.gz", members)
        else:
            for rel, data in members.items():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_bytes(data)
    return lists


def test_semi_aves_without_files_names_the_manual_step(tmp_path):
    raw = tmp_path / "raw" / "semi_aves"
    with pytest.raises(FileNotFoundError) as info:
        create_task("semi_aves").fetch(raw)
    message = str(info.value)
    for expected in ("manual download", str(raw), "l_train.txt", "val.txt", "u_train_in.txt",
                     "test.txt", "trainval_images", "u_train_in.tar.gz", "test.tar.gz",
                     "cvl-umass/ssl-evaluation", "cvl-umass/semi-inat-2020"):
        assert expected in message
    assert not (raw / "manifest.json").exists()


@pytest.mark.parametrize("as_archives", [False, True])
def test_semi_aves_fetch_prepare(tmp_path, as_archives):
    raw, out = tmp_path / "raw" / "semi_aves", tmp_path / "prepared" / "semi_aves"
    _semi_aves_tree(raw, as_archives=as_archives)
    task = create_task("semi_aves")
    task.fetch(raw)
    task.prepare(raw, out)
    data = _check_prepared(out, "semi_aves", channels=3, side=aves_mod.STORE, unlabelled=5)
    assert data.train_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] + [-1] * 5
    assert data.val_y.tolist() == [0, 1, 2] and data.test_y.tolist() == [0, 1, 2]
    assert data.meta["labelled_set"] == "fixed"
    # training images: USB's Resize((256, 256)); val/test: Resize(256) -> centre 256
    first = Image.open(raw / "trainval_images/0/0.jpg").convert("RGB")
    expected = np.asarray(first.resize((256, 256), Image.BILINEAR)).transpose(2, 0, 1)
    assert np.array_equal(data.train_x[0], expected)
    val = Image.open(raw / "trainval_images/0/3.jpg").convert("RGB")
    import torchvision.transforms as T

    expected = np.asarray(T.CenterCrop(256)(T.Resize(256)(val))).transpose(2, 0, 1)
    assert np.array_equal(data.val_x[0], expected)
    split = make_split(data.train_y, task="semi_aves", num_classes=200, num_labels=9,
                       val_per_class=task.val_per_class, seed=3,
                       validation_source=task.validation_source, fixed_labelled=True)
    assert split.labelled == list(range(9)) and split.unlabelled == list(range(9, 14))


def test_semi_aves_rejects_l_train_val_as_l_train(tmp_path):
    raw = tmp_path / "raw" / "semi_aves"
    lists = _semi_aves_tree(raw)
    (raw / "l_train.txt").write_text("\n".join(lists["l_train.txt"] + lists["val.txt"]) + "\n")
    task = create_task("semi_aves")
    task.fetch(raw)
    with pytest.raises(ValueError, match="l_train_val"):
        task.prepare(raw, tmp_path / "prepared")
    assert not (tmp_path / "prepared" / "data.npz").exists()


def test_semi_aves_detects_an_image_changed_after_fetch(tmp_path):
    raw = tmp_path / "raw" / "semi_aves"
    _semi_aves_tree(raw)
    task = create_task("semi_aves")
    task.fetch(raw)
    image = raw / "u_train_in/2.jpg"
    image.write_bytes(image.read_bytes()[:-50])
    with pytest.raises(ChecksumError, match="u_train_in/2.jpg"):
        task.prepare(raw, tmp_path / "prepared")
    assert not (tmp_path / "prepared" / "meta.json").exists()


def test_semi_aves_missing_image_is_named(tmp_path):
    raw = tmp_path / "raw" / "semi_aves"
    _semi_aves_tree(raw)
    (raw / "test/11.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="test/11.jpg"):
        create_task("semi_aves").fetch(raw)


# --------------------------------------------------------------------------- corrupt sources

Builder = Callable[[Path], Path]


def _corrupt_cases() -> dict[str, tuple[str, object, str, Builder]]:
    """task -> (task, object holding the Source, attribute, fixture builder)."""
    return {
        "cifar10": ("cifar10", cifar_mod.Cifar10, "archive", lambda d: _cifar10_archive(d)[0]),
        "stl10": ("stl10", stl10_mod, "ARCHIVE", lambda d: _stl10_archive(d)[0]),
        "eurosat": ("eurosat", eurosat_mod, "ARCHIVE", lambda d: _eurosat_zip(d, {})),
        "tissuemnist": ("tissuemnist", medmnist_mod, "ARCHIVE", _medmnist_npz),
    }


@pytest.mark.parametrize("case", ["cifar10", "stl10", "eurosat", "tissuemnist", "svhn"])
def test_checksum_mismatch_leaves_nothing(case, mirror, tmp_path, monkeypatch):
    if case == "svhn":
        for split in ("train", "extra", "test"):
            _svhn_mat(mirror / f"{split}_32x32.mat", 10, seed=0)
        files = {k: dataclasses.replace(v, urls=UNREACHABLE, known_hash="sha256:" + "0" * 64)
                 for k, v in svhn_mod.FILES.items()}
        monkeypatch.setattr(svhn_mod, "FILES", files)
    else:
        _, owner, attr, build = _corrupt_cases()[case]
        _pin(monkeypatch, owner, attr, build(mirror), digest="0" * 64)
    task = create_task(case)
    raw, out = tmp_path / "raw" / case, tmp_path / "prepared" / case
    with pytest.raises(FetchError, match="checksum"):
        task.fetch(raw)
    assert not raw.exists() or not any(raw.iterdir())  # nothing kept, no manifest
    with pytest.raises(FileNotFoundError):
        task.prepare(raw, out)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("case", ["cifar10", "stl10", "eurosat", "tissuemnist", "svhn"])
def test_truncated_source_fails_clearly_and_leaves_nothing(case, mirror, tmp_path, monkeypatch):
    """A file that matches its pin but is cut short (e.g. a truncated mirror copy)."""
    if case == "svhn":
        for split in ("train", "extra", "test"):
            _svhn_mat(mirror / f"{split}_32x32.mat", 10, seed=0)
        target = mirror / "extra_32x32.mat"
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
        files = {k: dataclasses.replace(
            v, urls=UNREACHABLE, known_hash="sha256:" + sha256_file(mirror / v.filename))
            for k, v in svhn_mod.FILES.items()}
        monkeypatch.setattr(svhn_mod, "FILES", files)
    else:
        _, owner, attr, build = _corrupt_cases()[case]
        path = build(mirror)
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
        _pin(monkeypatch, owner, attr, path)
    task = create_task(case)
    raw, out = tmp_path / "raw" / case, tmp_path / "prepared" / case
    task.fetch(raw)
    with pytest.raises(CorruptArchiveError, match="truncated|corrupt"):
        task.prepare(raw, out)
    assert not (out / "data.npz").exists() and not (out / "meta.json").exists()


def test_raw_file_changed_after_fetch_is_detected(mirror, tmp_path, monkeypatch):
    path = _medmnist_npz(mirror)
    monkeypatch.setattr(medmnist_mod, "ARCHIVE", dataclasses.replace(
        medmnist_mod.ARCHIVE, urls=UNREACHABLE, known_hash="sha256:" + sha256_file(path)))
    task = create_task("tissuemnist")
    raw = tmp_path / "raw"
    task.fetch(raw)
    (raw / "tissuemnist.npz").write_bytes(b"not the file")
    with pytest.raises(ChecksumError, match="mismatch"):
        task.prepare(raw, tmp_path / "prepared")
    assert not (tmp_path / "prepared" / "data.npz").exists()


# --------------------------------------------------------------------------- task settings

#: stored image shape -> the views' output shape, per task
STORED = {
    "cifar10": ((3, 32, 32), (3, 32, 32)),
    "cifar100": ((3, 32, 32), (3, 32, 32)),
    "svhn": ((3, 32, 32), (3, 32, 32)),
    "stl10": ((3, 96, 96), (3, 96, 96)),
    "eurosat": ((3, 64, 64), (3, 32, 32)),
    "tissuemnist": ((1, 28, 28), (3, 32, 32)),
    "semi_aves": ((3, 256, 256), (3, 224, 224)),
}


@pytest.mark.parametrize("name", VISION_TASKS)
def test_task_views_train_settings_and_budgets(name):
    task = create_task(name)
    assert task.domain == "image"
    TrainConfig.from_dict(task.train)  # every key is a trainer setting
    stored, produced = STORED[name]
    views = build_views("image", task.augment)
    x = torch.randint(0, 256, (2, *stored), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    for view in ("eval", "weak", "strong"):
        out = views[view](x, gen)
        assert out.shape == (2, *produced) and torch.isfinite(out).all(), view
    pool = task.pool_size()
    assert pool is not None and pool > 0
    for budget in task.label_budgets:
        if not task.fixed_labelled:
            assert budget % task.num_classes == 0 and budget < pool


def test_usb_settings_match_the_reference():
    expected = {  # task: (backbone, lr, layer_decay, budgets)
        "cifar100": ("vit_small_patch2_32", 5e-4, 0.5, (200, 400)),
        "stl10": ("vit_base_patch16_96", 1e-4, 0.65, (40, 100)),
        "eurosat": ("vit_small_patch2_32", 5e-5, 1.0, (20, 40)),
        "tissuemnist": ("vit_tiny_patch2_32", 5e-5, 0.95, (80, 400)),
        "semi_aves": ("vit_small_patch16_224", 1e-3, 0.65, (3959,)),
    }
    for name, (backbone, lr, decay, budgets) in expected.items():
        task = create_task(name)
        assert (task.backbone, task.train["lr"], task.train["layer_decay"]) == (backbone, lr, decay)
        assert task.label_budgets == budgets
        assert task.train["iterations"] == 204_800 and task.train["warmup_iterations"] == 5120
        assert task.train["optimizer"] == "adamw" and task.train["weight_decay"] == 5e-4
        assert task.train["batch_size"] == 8 and task.train["uratio"] == 1
        assert task.train["ema_m"] == 0.0 and task.train["eval_every"] == 2048
    for name in ("cifar10", "svhn"):  # classic CV only
        task = create_task(name)
        assert task.backbone == "wrn_28_2" and task.train["optimizer"] == "sgd"
        assert task.train["iterations"] == 2**20 and task.train["ema_m"] == 0.999
    assert create_task("semi_aves").fixed_labelled
    assert create_task("tissuemnist").validation_source == "prepared"


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("name", ["tissuemnist", "semi_aves"])
def test_prepared_vision_task_trains(name, mirror, tmp_path, monkeypatch):
    """fetch -> prepare -> split -> two FixMatch steps with the task's own views (RGB from
    grey, resize, 224 crops) and its validation source; a small CNN stands in for the ViT."""
    from semibench.config import check_config, run_config
    from semibench.splits import write_split
    from semibench.train.loop import train_run

    if name == "tissuemnist":
        path = _medmnist_npz(mirror)
        monkeypatch.setattr(medmnist_mod, "ARCHIVE", dataclasses.replace(
            medmnist_mod.ARCHIVE, urls=UNREACHABLE, known_hash="sha256:" + sha256_file(path)))
        num_labels = 8
    else:
        _semi_aves_tree(tmp_path / "raw" / name)
        num_labels = 9
    raw, out = _fetch_prepare(name, tmp_path)
    task = create_task(name)
    data = load_prepared(out)
    split = make_split(data.train_y, task=name, num_classes=task.num_classes,
                       num_labels=num_labels, val_per_class=task.val_per_class, seed=0,
                       validation_source=task.validation_source,
                       fixed_labelled=task.fixed_labelled)
    write_split(split, tmp_path / "split.json")
    train = {"iterations": 2, "eval_every": 2, "batch_size": 2, "uratio": 1,
             "eval_batch_size": 8, "warmup_iterations": 0, "device": "cpu"}
    cfg = check_config({"algorithms": ["fixmatch"], "seeds": [0], "tasks": {name: {
        "num_labels": [num_labels], "backbone": "cnn_small", "backbone_args": {"in_chans": 3},
        "train": train}}})
    metrics = train_run(run_config(cfg, name, num_labels, "fixmatch", 0), out,
                        tmp_path / "split.json", tmp_path / "run")
    assert metrics["last"]["iteration"] == 2
    assert len(metrics["last"]["test_per_class_accuracy"]) == task.num_classes


def test_stl10_trains_and_evaluates_at_32_px(mirror, tmp_path, monkeypatch):
    """USB's classic_cv_imb resizes STL-10 to 32 px (``img_size: 32``: ``Resize(32)`` then
    ``RandomCrop(32, padding=4, reflect)``, eval ``Resize(32)``). ``tasks.stl10.augment:
    {resize: 32}`` does this from the one 96-px prepared copy: every view resizes first
    (antialiased bilinear) and crops at the resized side, so the WRN sees 32-px inputs in
    training and evaluation."""
    from semibench.config import check_config, run_config
    from semibench.splits import write_split
    from semibench.train import loop, trainer

    path, _ = _stl10_archive(mirror)
    monkeypatch.setattr(stl10_mod, "ARCHIVE", dataclasses.replace(
        stl10_mod.ARCHIVE, urls=UNREACHABLE, known_hash="sha256:" + sha256_file(path)))
    _, out = _fetch_prepare("stl10", tmp_path)
    data = load_prepared(out)
    assert data.train_x.shape[1:] == (3, 96, 96)  # no second, 32-px copy
    write_split(make_split(data.train_y, task="stl10", num_classes=10, num_labels=10,
                           val_per_class=1, seed=0), tmp_path / "split.json")
    train = {"iterations": 2, "eval_every": 2, "batch_size": 2, "uratio": 1,
             "eval_batch_size": 8, "device": "cpu"}
    cfg = check_config({"algorithms": ["fixmatch"], "seeds": [0], "tasks": {"stl10": {
        "num_labels": [10], "backbone": "wrn_28_2", "augment": {"resize": 32},
        "train": train}}})
    run = run_config(cfg, "stl10", 10, "fixmatch", 0)
    assert run["augment"]["resize"] == 32 and run["augment"]["crop_ratio"] == 0.875

    seen: list[tuple[int, ...]] = []
    create = trainer.create_backbone

    def recording(*args, **kwargs):
        model = create(*args, **kwargs)
        model.stem.register_forward_pre_hook(lambda _m, inputs: seen.append(
            tuple(inputs[0].shape[1:])))
        return model

    monkeypatch.setattr(trainer, "create_backbone", recording)
    metrics = loop.train_run(run, out, tmp_path / "split.json", tmp_path / "run")
    assert metrics["last"]["iteration"] == 2
    assert seen and set(seen) == {(3, 32, 32)}  # training steps and evaluation
    assert metrics["input_format"]["shape"] == [3, 96, 96]  # predict takes the stored images

    # the same as resizing each stored image once with PIL, as USB's Resize(32) does
    small = np.stack([np.asarray(Image.fromarray(img.transpose(1, 2, 0)).resize(
        (32, 32), Image.BILINEAR)).transpose(2, 0, 1) for img in data.test_x])
    views = build_views("image", run["augment"])
    once = build_views("image", {**run["augment"], "resize": None})
    assert torch.equal(views["eval"](torch.as_tensor(data.test_x)),
                       once["eval"](torch.as_tensor(small)))
