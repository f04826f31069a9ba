"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from the canonical python-version archives.

Source: ``https://www.cs.toronto.edu/~kriz/cifar-{10,100}-python.tar.gz`` with the SHA-256
values that torchvision's and Keras' loaders pin. The batch files inside are Python pickles:
they are read only after the archive's checksum matched, and through an unpickler that can only
build numpy arrays, dtypes and plain containers, so a tampered file cannot run code.

Prepared data: ``train`` = the 50,000 training images (the SSL pool), ``test`` = the 10,000 test
images, uint8 ``[N, 3, 32, 32]``; class names are checked against the archive's meta file.

Validation (deviation from USB): USB has no validation split for CV and picks its "best"
checkpoint on the test set (issue #98). Here ``val_per_class`` images per class are drawn from
the pool per seed, and model selection only sees them.

``cifar100`` carries USB's CV settings (200 / 400 labels, ``vit_small_patch2_32`` pretrained,
AdamW lr 5e-4, layer decay 0.5; the backbone's own drop path 0.2 is USB's). ``cifar10`` is not
in USB's CV grid, only in its classic (TorchSSL) setting, so its defaults are the classic ones
(40 / 250 / 4,000 labels, WRN-28-2 from scratch, SGD 0.03, ImageNet mean/std as in USB's
classic configs).
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np

from semibench.archive import CorruptArchiveError, read_members
from semibench.tasks._sources import Source, fetch_sources
from semibench.tasks._vision import (
    CLASSIC_CV_TRAIN,
    IMAGENET_MEAN,
    IMAGENET_STD,
    check_classes,
    usb_cv_train,
)
from semibench.tasks.base import TASKS, Task, read_manifest, write_prepared

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone",
    "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip

# --------------------------------------------------------------------------- safe unpickling

_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's array reconstructor, without importing it
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # pickled by numpy < 2
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # pickled by numpy >= 2
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how Python 3 writes bytes at pickle protocol 2
}


class _ArrayUnpickler(pickle.Unpickler):
    """Builds numpy arrays and builtin containers only; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR batch holds only arrays and lists"
            ) from None


def load_batch(handle: IO[bytes], what: str) -> dict[str, Any]:
    """Unpickle one CIFAR batch (written by Python 2: byte-string keys) into a str-keyed dict."""
    try:
        obj = _ArrayUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, ValueError, TypeError) as err:  # EOF: see `reading`
        raise CorruptArchiveError(f"{what}: not a readable CIFAR batch ({err})") from err
    if not isinstance(obj, dict):
        raise CorruptArchiveError(f"{what}: expected a dict, got {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _images_labels(batch: dict[str, Any], label_key: str,
                   what: str) -> tuple[np.ndarray, np.ndarray]:
    data = batch.get("data")
    labels = batch.get(label_key)
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
            or data.shape[1] != 3 * 32 * 32):
        raise CorruptArchiveError(f"{what}: 'data' is not a uint8 [N, 3072] array")
    if labels is None or len(labels) != len(data):
        raise CorruptArchiveError(f"{what}: {label_key!r} missing or not one label per image")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def _names(values: Any) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


# --------------------------------------------------------------------------- tasks


class _Cifar(Task):
    domain = "image"
    archive: ClassVar[Source]
    #: archive member names of the training batches, the test batch and the meta file
    train_members: ClassVar[tuple[str, ...]]
    test_member: ClassVar[str]
    meta_member: ClassVar[str]
    label_key: ClassVar[str]
    names_key: ClassVar[str]

    def fetch(self, raw_dir: Path) -> None:
        fetch_sources(self, [self.archive], raw_dir)

    def prepare(self, raw_dir: Path, out_dir: Path) -> None:
        manifest = read_manifest(raw_dir)
        path = raw_dir / self.archive.filename
        members = (*self.train_members, self.test_member, self.meta_member)
        batches = read_members(
            path, {m: (lambda h, _size, m=m: load_batch(h, f"{path.name}:{m}")) for m in members}
        )
        check_classes(_names(batches[self.meta_member].get(self.names_key, [])), self.classes,
                      f"{path.name}:{self.meta_member}")
        train = [_images_labels(batches[m], self.label_key, m) for m in self.train_members]
        test_x, test_y = _images_labels(batches[self.test_member], self.label_key,
                                        self.test_member)
        write_prepared(
            out_dir,
            task=self,
            train_x=np.concatenate([x for x, _ in train]),
            train_y=np.concatenate([y for _, y in train]),
            test_x=test_x,
            test_y=test_y,
            raw_checksums=manifest["files"],
        )


@TASKS.register("cifar10")
class Cifar10(_Cifar):
    name = "cifar10"
    classes = CIFAR10_CLASSES
    label_budgets = (40, 250, 4000)  # classic CV only (USB's CV grid has no CIFAR-10)
    val_per_class = 100
    num_train = 50_000
    backbone = "wrn_28_2"
    augment = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "resize": 32, "crop_ratio": 0.875,
               "hflip": True}
    train = dict(CLASSIC_CV_TRAIN)
    source = ("CIFAR-10 (Krizhevsky 2009), python version, "
              "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")
    archive = Source(
        "cifar-10-python.tar.gz",
        "sha256:6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
        ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    )
    train_members = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))
    test_member = "cifar-10-batches-py/test_batch"
    meta_member = "cifar-10-batches-py/batches.meta"
    label_key = "labels"
    names_key = "label_names"


@TASKS.register("cifar100")
class Cifar100(_Cifar):
    name = "cifar100"
    classes = CIFAR100_CLASSES
    label_budgets = (200, 400)  # USB CV: 2 and 4 per class
    val_per_class = 10
    num_train = 50_000
    backbone = "vit_small_patch2_32"
    augment = {
        "mean": tuple(v / 255 for v in (129.3, 124.1, 112.4)),
        "std": tuple(v / 255 for v in (68.2, 65.4, 70.4)),
        "resize": 32,
        "crop_ratio": 0.875,
        "hflip": True,
    }
    train = usb_cv_train(lr=5e-4, layer_decay=0.5)
    source = ("CIFAR-100 (Krizhevsky 2009), python version, fine labels, "
              "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz")
    archive = Source(
        "cifar-100-python.tar.gz",
        "sha256:85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
        ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
    )
    train_members = ("cifar-100-python/train",)
    test_member = "cifar-100-python/test"
    meta_member = "cifar-100-python/meta"
    label_key = "fine_labels"
    names_key = "fine_label_names"
