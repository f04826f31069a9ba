"""STL-10 (Coates et al. 2011) from the canonical binary archive.

Source: ``http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz``, pinned by the MD5 that
the source's loaders publish (torchvision; no SHA-256 is published; ``fetch`` records the
SHA-256 of the verified file in the manifest). Inside ``stl10_binary/``: ``*_X.bin`` hold uint8
images stored column-major (channel, column, row), ``*_y.bin`` labels 1..10.

Prepared data: ``train`` = the 5,000 labelled training images followed by the 100,000
unlabelled images with label -1 (they only ever join the unlabelled set), ``test`` = the 8,000
test images, uint8 ``[N, 3, 96, 96]``. As in USB, the unlabelled set is the 100k images plus the
5k training images; labels are sampled from the 5k.

Defaults are USB's CV settings: 40 / 100 labels, MAE-pretrained ``vit_base_patch16_96``, AdamW
lr 1e-4, layer decay 0.65, crop ratio 0.875 at 96 px. Validation (deviation from USB, which
selects on the test set, issue #98): ``val_per_class`` labelled images per class drawn from the
5k per seed. (USB reuses one stored labelled index file for STL-10, ``load_exist=True``; here
the labels are drawn per seed like every other task.)

At 32 px (USB's classic_cv_imb: ``img_size: 32`` with a WRN, i.e. ``Resize(32)`` of every
image, then ``RandomCrop(32, padding=4, reflect)``; evaluation ``Resize(32)``): write
``augment: {resize: 32}`` in the task's config entry. Every view then resizes the stored 96-px
images first (bilinear, antialiased: PIL's values) and crops at the resized side, from the one
prepared copy; ``semibench predict`` still takes 96-px images.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np

from semibench.archive import CorruptArchiveError, read_members
from semibench.tasks._sources import Source, fetch_sources
from semibench.tasks._vision import check_classes, read_exact, usb_cv_train
from semibench.tasks.base import TASKS, Task, read_manifest, write_prepared

ARCHIVE = Source(
    "stl10_binary.tar.gz",
    "md5:91f7769df0f17e558f3565bffb0c7dfb",
    ("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",),
)
CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
SIDE = 96
_PREFIX = "stl10_binary/"


def _images(handle: IO[bytes], size: int, what: str) -> np.ndarray:
    """[N, 3, 96, 96] view of one ``*_X.bin`` (stored as channel, column, row)."""
    per_image = 3 * SIDE * SIDE
    if size % per_image:
        raise CorruptArchiveError(f"{what}: {size} bytes is not a whole number of images")
    raw = read_exact(handle, size, what).reshape(-1, 3, SIDE, SIDE)
    return raw.transpose(0, 1, 3, 2)


def _labels(handle: IO[bytes], size: int, what: str) -> np.ndarray:
    labels = read_exact(handle, size, what).astype(np.int64)
    if len(labels) and (labels.min() < 1 or labels.max() > len(CLASSES)):
        raise CorruptArchiveError(f"{what}: labels outside 1..{len(CLASSES)}")
    return labels - 1


@TASKS.register("stl10")
class Stl10(Task):
    name = "stl10"
    domain = "image"
    classes = CLASSES
    label_budgets = (40, 100)  # USB CV: 4 and 10 per class
    val_per_class = 50
    num_train = 5_000 + 100_000
    backbone = "vit_base_patch16_96"
    augment = {
        "mean": tuple(v / 255 for v in (112.4, 109.1, 98.6)),
        "std": tuple(v / 255 for v in (68.4, 66.6, 68.5)),
        "resize": SIDE,
        "crop_ratio": 0.875,
        "hflip": True,
    }
    train = usb_cv_train(lr=1e-4, layer_decay=0.65)
    source = ("STL-10 (Coates et al. 2011), binary version, "
              "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz")

    def fetch(self, raw_dir: Path) -> None:
        fetch_sources(self, [ARCHIVE], raw_dir)

    def prepare(self, raw_dir: Path, out_dir: Path) -> None:
        manifest = read_manifest(raw_dir)
        path = raw_dir / ARCHIVE.filename

        def images(name: str):
            return lambda h, size: _images(h, size, f"{path.name}:{_PREFIX}{name}")

        def labels(name: str):
            return lambda h, size: _labels(h, size, f"{path.name}:{_PREFIX}{name}")

        parts = read_members(path, {
            _PREFIX + "train_X.bin": images("train_X.bin"),
            _PREFIX + "train_y.bin": labels("train_y.bin"),
            _PREFIX + "test_X.bin": images("test_X.bin"),
            _PREFIX + "test_y.bin": labels("test_y.bin"),
            _PREFIX + "unlabeled_X.bin": images("unlabeled_X.bin"),
            _PREFIX + "class_names.txt": lambda h, size: h.read(size).decode("utf-8").split(),
        })
        check_classes(parts[_PREFIX + "class_names.txt"], CLASSES, f"{path.name}:class_names.txt")
        lb_x, lb_y = parts[_PREFIX + "train_X.bin"], parts[_PREFIX + "train_y.bin"]
        test_x, test_y = parts[_PREFIX + "test_X.bin"], parts[_PREFIX + "test_y.bin"]
        ulb_x = parts[_PREFIX + "unlabeled_X.bin"]
        for split, x, y in (("train", lb_x, lb_y), ("test", test_x, test_y)):
            if len(x) != len(y):
                raise CorruptArchiveError(f"{path.name}: {split} has {len(x)} images but "
                                          f"{len(y)} labels")
        write_prepared(
            out_dir,
            task=self,
            train_x=np.concatenate([lb_x, ulb_x]),
            train_y=np.concatenate([lb_y, np.full(len(ulb_x), -1, dtype=np.int64)]),
            test_x=np.ascontiguousarray(test_x),
            test_y=test_y,
            raw_checksums=manifest["files"],
        )
