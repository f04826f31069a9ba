"""EuroSAT RGB (Helber et al. 2019): 27,000 Sentinel-2 patches of 64x64 px in 10 land-use
classes, from the canonical ``EuroSAT.zip`` (an ImageFolder tree ``2750/<Class>/<Class>_<i>.jpg``).

Source: ``https://madm.dfki.de/files/sentinel/EuroSAT.zip`` (SHA-256 as pinned by torchvision's
prototype loader; the MD5 torchvision's stable loader pins is of the same file), falling back to
torchgeo's Hugging Face copy of the same file at a fixed revision when the canonical server is
unreachable.

Split, as USB (``datasets/cv_datasets/eurosat.py``): classes in sorted folder order, images of a
class in sorted file-name order (ImageFolder's order: ``AnnualCrop_1``, ``AnnualCrop_10``, ...);
per class the first ``int(0.8 * n)`` images are the SSL pool (21,600) and the rest the test set
(5,400). Images are stored at their native 64x64; the views resize them to 32 px.

Defaults are USB's CV settings: 20 / 40 labels, ``vit_small_patch2_32`` pretrained, AdamW lr
5e-5 without layer decay, mean/std 0.5, HFlip + VFlip. Validation (deviation from USB, which
selects on the test set, issue #98): ``val_per_class`` images per class drawn from the pool per
seed.
"""

from __future__ import annotations

import zipfile
from collections import defaultdict
from pathlib import Path, PurePosixPath

import numpy as np

from semibench.archive import CorruptArchiveError, reading
from semibench.tasks._sources import Source, fetch_sources
from semibench.tasks._vision import check_classes, decode_rgb, hwc_to_chw, usb_cv_train
from semibench.tasks.base import TASKS, Task, read_manifest, write_prepared

ARCHIVE = Source(
    "EuroSAT.zip",
    "sha256:8ebea626349354c5328b142b96d0430e647051f26efc2dc974c843f25ecf70bd",
    (
        "https://madm.dfki.de/files/sentinel/EuroSAT.zip",
        "https://huggingface.co/datasets/torchgeo/eurosat/resolve/"
        "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
    ),
)
CLASSES = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
    "PermanentCrop", "Residential", "River", "SeaLake",
)  # fmt: skip
#: USB: the first 60 % (train) + 20 % (val) of each class form the pool, the last 20 % the test
POOL_FRACTION = 0.6 + 0.2
#: the file types torchvision's ImageFolder accepts
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def image_folder_members(names: list[str]) -> dict[str, list[str]]:
    """Class folder -> its image members in ImageFolder order (sorted file names)."""
    by_class: dict[str, list[str]] = defaultdict(list)
    for name in names:
        path = PurePosixPath(name)
        if name.endswith("/") or path.suffix.lower() not in IMAGE_SUFFIXES or len(path.parts) < 2:
            continue
        if "__MACOSX" in path.parts or path.name.startswith("."):  # archiver metadata
            continue
        by_class[path.parent.name].append(name)
    return {c: sorted(by_class[c], key=lambda n: PurePosixPath(n).name) for c in sorted(by_class)}


@TASKS.register("eurosat")
class EuroSat(Task):
    name = "eurosat"
    domain = "image"
    classes = CLASSES
    label_budgets = (20, 40)  # USB CV: 2 and 4 per class
    val_per_class = 50
    num_train = 21_600
    backbone = "vit_small_patch2_32"
    augment = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "resize": 32,
               "crop_ratio": 0.875, "hflip": True, "vflip": True}
    train = usb_cv_train(lr=5e-5, layer_decay=1.0)
    source = ("EuroSAT RGB (Helber et al. 2019), https://madm.dfki.de/files/sentinel/EuroSAT.zip; "
              "per class first 80 % pool / last 20 % test (USB)")

    def fetch(self, raw_dir: Path) -> None:
        fetch_sources(self, [ARCHIVE], raw_dir)

    def prepare(self, raw_dir: Path, out_dir: Path) -> None:
        manifest = read_manifest(raw_dir)
        path = raw_dir / ARCHIVE.filename
        train_x, train_y, test_x, test_y = [], [], [], []
        with reading(path), zipfile.ZipFile(path) as archive:
            folders = image_folder_members(archive.namelist())
            check_classes(list(folders), CLASSES, f"{path.name} (class folders)")
            for label, members in enumerate(folders.values()):
                images = [decode_rgb(archive.read(m), f"{path.name}:{m}") for m in members]
                shapes = {im.shape for im in images}
                if len(shapes) != 1:
                    raise CorruptArchiveError(f"{path.name}: images of {CLASSES[label]} have "
                                              f"different sizes {sorted(shapes)}")
                stacked = hwc_to_chw(np.stack(images))
                n_pool = int(POOL_FRACTION * len(members))
                train_x.append(stacked[:n_pool])
                test_x.append(stacked[n_pool:])
                train_y.append(np.full(n_pool, label, dtype=np.int64))
                test_y.append(np.full(len(members) - n_pool, label, dtype=np.int64))
        if len({x.shape[1:] for x in train_x + test_x}) != 1:
            raise CorruptArchiveError(f"{path.name}: the classes have different image sizes")
        write_prepared(
            out_dir,
            task=self,
            train_x=np.concatenate(train_x),
            train_y=np.concatenate(train_y),
            test_x=np.concatenate(test_x),
            test_y=np.concatenate(test_y),
            raw_checksums=manifest["files"],
        )
