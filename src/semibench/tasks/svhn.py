"""SVHN cropped digits (Netzer et al. 2011) from the canonical MATLAB files.

Source: ``http://ufldl.stanford.edu/housenumbers/{train,extra,test}_32x32.mat`` with the SHA-256
values torchvision pins. Each file holds ``X`` uint8 ``[32, 32, 3, N]`` and ``y`` ``[N, 1]``
with the digit 0 stored as label 10 (mapped to 0 here, as every loader does).

Prepared data: ``train`` = train + extra (73,257 + 531,131 = 604,388 images, USB's classic
pool), ``test`` = the 26,032 test images, uint8 ``[N, 3, 32, 32]``.

SVHN is only in USB's classic (TorchSSL) setting, so the defaults are the classic ones:
40 / 250 / 1,000 labels, WRN-28-2 from scratch, SGD 0.03, USB's SVHN mean/std, HFlip in the
weak view (USB keeps it for SVHN). Validation (deviation from USB, which selects on the test
set, issue #98): ``val_per_class`` images per class drawn from the pool per seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semibench.archive import CorruptArchiveError
from semibench.tasks._sources import Source, fetch_sources
from semibench.tasks._vision import CLASSIC_CV_TRAIN
from semibench.tasks.base import TASKS, Task, read_manifest, write_prepared

_BASE = "http://ufldl.stanford.edu/housenumbers/"
FILES = {
    "train": Source("train_32x32.mat",
                    "sha256:435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8",
                    (_BASE + "train_32x32.mat",)),
    "extra": Source("extra_32x32.mat",
                    "sha256:a133a4beb38a00fcdda90c9489e0c04f900b660ce8a316a5e854838379a71eb3",
                    (_BASE + "extra_32x32.mat",)),
    "test": Source("test_32x32.mat",
                   "sha256:cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b",
                   (_BASE + "test_32x32.mat",)),
}


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 3, 32, 32]`` uint8 and labels 0..9 from one SVHN ``*_32x32.mat`` file."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        content = loadmat(path, variable_names=("X", "y"))
    except (MatReadError, ValueError, OSError, EOFError, TypeError) as err:
        raise CorruptArchiveError(
            f"{path}: the file is truncated or corrupt ({type(err).__name__}: {err}); "
            f"delete {path.parent} and fetch again"
        ) from err
    x, y = content.get("X"), content.get("y")
    if x is None or y is None or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise CorruptArchiveError(f"{path}: expected X uint8 [32, 32, 3, N] and y")
    labels = np.asarray(y, dtype=np.int64).reshape(-1)
    if len(labels) != x.shape[3]:
        raise CorruptArchiveError(f"{path}: {x.shape[3]} images but {len(labels)} labels")
    if labels.min(initial=1) < 1 or labels.max(initial=10) > 10:
        raise CorruptArchiveError(f"{path}: labels outside 1..10")
    labels[labels == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels


@TASKS.register("svhn")
class Svhn(Task):
    name = "svhn"
    domain = "image"
    classes = tuple(str(d) for d in range(10))
    label_budgets = (40, 250, 1000)  # classic CV only
    val_per_class = 100
    num_train = 73_257 + 531_131
    backbone = "wrn_28_2"
    augment = {"mean": (0.4380, 0.4440, 0.4730), "std": (0.1751, 0.1771, 0.1744), "resize": 32,
               "crop_ratio": 0.875, "hflip": True}
    train = dict(CLASSIC_CV_TRAIN)
    source = ("SVHN cropped digits (Netzer et al. 2011), train + extra / test, "
              "http://ufldl.stanford.edu/housenumbers/")

    def fetch(self, raw_dir: Path) -> None:
        fetch_sources(self, list(FILES.values()), raw_dir)

    def prepare(self, raw_dir: Path, out_dir: Path) -> None:
        manifest = read_manifest(raw_dir)
        train_x, train_y = read_svhn_mat(raw_dir / FILES["train"].filename)
        extra_x, extra_y = read_svhn_mat(raw_dir / FILES["extra"].filename)
        train_x = np.concatenate([train_x, extra_x])
        train_y = np.concatenate([train_y, extra_y])
        del extra_x
        test_x, test_y = read_svhn_mat(raw_dir / FILES["test"].filename)
        write_prepared(out_dir, task=self, train_x=train_x, train_y=train_y, test_x=test_x,
                       test_y=test_y, raw_checksums=manifest["files"])
