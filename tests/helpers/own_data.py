"""Your own data on disk, as a user lays it out for a `from_files` task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"daisy": (250, 220, 0), "rose": (200, 0, 0)}


def write_images(root: Path, train: int = 6, test: int = 2, unlabelled: int = 3) -> None:
    """Two colours as classes, in several formats and sizes (resized to 32 x 32 by prepare)."""
    rng = np.random.default_rng(0)
    formats = ["png", "jpg", "bmp", "gif", "webp"]
    for role, n in (("train", train), ("test", test)):
        for c, colour in COLOURS.items():
            folder = root / role / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shape = (40 + 3 * i, 30 + 5 * i, 3)  # every file differs (no duplicates)
                pixels = np.clip(np.array(colour) + rng.integers(0, 6, shape), 0, 255)
                image = Image.fromarray(pixels.astype(np.uint8))
                image.save(folder / f"{role}{i}.{formats[i % len(formats)]}")
    folder = root / "unlabelled" / "batch1"
    folder.mkdir(parents=True)
    for i in range(unlabelled):
        Image.fromarray(rng.integers(0, 255, (20, 24, 4), dtype=np.uint8), "RGBA").save(
            folder / f"u{i}.png")
    (root / "train" / "daisy" / ".DS_Store").write_bytes(b"\0\1")  # litter, never data
    (root / "train" / "daisy" / "notes.txt").write_text("not an image")  # ignored by suffix
