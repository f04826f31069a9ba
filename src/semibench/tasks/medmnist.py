"""TissueMNIST from MedMNIST v2 (Yang et al. 2023): 236,386 kidney-cortex cell images,
28x28 grayscale, 8 classes, with the official train / val / test split.

Source: ``tissuemnist.npz`` on Zenodo (record 10519652, the MedMNIST v2/v3 data record),
pinned by the MD5 that the ``medmnist`` package publishes (Zenodo publishes MD5s; ``fetch``
records the SHA-256 of the verified file in the manifest). The npz holds
``{train,val,test}_images`` uint8 ``[N, 28, 28]`` and ``{train,val,test}_labels`` ``[N, 1]``;
it is read without pickle.

Prepared data: ``train`` = the official train split (165,466, USB's pool), ``test`` = the
official test split (47,280), ``val_x``/``val_y`` = the official validation split (23,640), all
stored grayscale ``[N, 1, 28, 28]``; the views resize to 32 px and repeat the channel
(``as_rgb``), as USB does.

Validation (decision, deviation from USB): USB leaves MedMNIST's validation split unused and
selects on the test set (issue #98). Here model selection uses the official validation split
(``validation_source = "prepared"``): it is the source's own split for exactly this purpose,
disjoint from train and test, the same for every seed, and it leaves USB's pool untouched
(no pool sample is held out). Its size (23,640) makes every evaluation cost about half a test
pass; it is still small next to the 2,048 training steps between evaluations.

Defaults are USB's CV settings: 80 / 400 labels, ``vit_tiny_patch2_32`` pretrained (its
default drop path 0.1 is USB's), AdamW lr 5e-5, layer decay 0.95, crop ratio 0.95, HFlip +
VFlip, mean/std 0.5 and RandAugment without colour ops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semibench.archive import CorruptArchiveError, reading
from semibench.tasks._sources import Source, fetch_sources
from semibench.tasks._vision import usb_cv_train
from semibench.tasks.base import TASKS, Task, read_manifest, write_prepared

ARCHIVE = Source(
    "tissuemnist.npz",
    "md5:ebe78ee8b05294063de985d821c1c34b",
    ("https://zenodo.org/records/10519652/files/tissuemnist.npz?download=1",),
)
CLASSES = (
    "Collecting Duct, Connecting Tubule",
    "Distal Convoluted Tubule",
    "Glomerular endothelial cells",
    "Interstitial endothelial cells",
    "Leukocytes",
    "Podocytes",
    "Proximal Tubule Segments",
    "Thick Ascending Limb",
)


def read_medmnist_npz(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split -> (images ``[N, 1, H, W]`` uint8, labels ``[N]`` int64) of a 2-D MedMNIST npz."""
    out = {}
    with reading(path):
        try:
            with np.load(path, allow_pickle=False) as data:
                for split in ("train", "val", "test"):
                    x, y = data[f"{split}_images"], data[f"{split}_labels"]
                    if x.dtype != np.uint8 or x.ndim != 3:
                        raise CorruptArchiveError(f"{path}: {split}_images is not uint8 [N, H, W]")
                    labels = np.asarray(y, dtype=np.int64).reshape(-1)
                    if len(labels) != len(x):
                        raise CorruptArchiveError(f"{path}: {split} has {len(x)} images but "
                                                  f"{len(labels)} labels")
                    out[split] = (x[:, None], labels)
        except KeyError as err:
            raise CorruptArchiveError(f"{path}: missing array {err}") from err
        except ValueError as err:  # numpy's reader on a cut or malformed member
            raise CorruptArchiveError(f"{path}: the file is truncated or corrupt ({err}); "
                                      f"delete {path.parent} and fetch again") from err
    return out


@TASKS.register("tissuemnist")
class TissueMnist(Task):
    name = "tissuemnist"
    domain = "image"
    classes = CLASSES
    label_budgets = (80, 400)  # USB CV: 10 and 50 per class
    val_per_class = 0  # the official validation split is used instead
    validation_source = "prepared"
    num_train = 165_466
    backbone = "vit_tiny_patch2_32"
    augment = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "resize": 32, "as_rgb": True,
               "crop_ratio": 0.95, "hflip": True, "vflip": True, "exclude_color_aug": True}
    train = usb_cv_train(lr=5e-5, layer_decay=0.95)
    source = ("TissueMNIST, MedMNIST v2 (Yang et al. 2023; BBBC051), official splits, "
              "https://zenodo.org/records/10519652/files/tissuemnist.npz")

    def fetch(self, raw_dir: Path) -> None:
        fetch_sources(self, [ARCHIVE], raw_dir)

    def prepare(self, raw_dir: Path, out_dir: Path) -> None:
        manifest = read_manifest(raw_dir)
        splits = read_medmnist_npz(raw_dir / ARCHIVE.filename)
        write_prepared(
            out_dir,
            task=self,
            train_x=splits["train"][0],
            train_y=splits["train"][1],
            test_x=splits["test"][0],
            test_y=splits["test"][1],
            val_x=splits["val"][0],
            val_y=splits["val"][1],
            raw_checksums=manifest["files"],
        )

