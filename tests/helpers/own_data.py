"""Your own data on disk, as a user lays it out for a `from_files` task."""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

COLOURS = {"daisy": (250, 220, 0), "rose": (200, 0, 0)}
TONES = {"high": 1760.0, "low": 220.0}


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


def write_texts(root: Path) -> None:
    """Two classes of short reviews, a long one (cut by max_chars) and two unlabelled rows."""
    root.mkdir(parents=True)
    rows = [("a lovely sunny day " * 60, "pos"), ("what a great film", "pos"),
            ("truly wonderful", "pos"), ("I loved it", "pos"), ("best ever", "pos"),
            ("so happy with it", "pos"), ("awful and boring", "neg"), ("a terrible plot", "neg"),
            ("I hated it", "neg"), ("worst purchase", "neg"), ("very bad", "neg"),
            ("never again", "neg"), ("no label on this one", ""), ("nor on this one", "")]
    lines = ["text,label"] + [f'"{t}",{label}' for t, label in rows]
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    test = [("pretty great", "pos"), ("quite bad", "neg")]
    (root / "test.csv").write_text("text,label\n" + "".join(f"{t},{c}\n" for t, c in test))


def write_wav(path: Path, freq: float, rate: int, seconds: float, channels: int = 1) -> None:
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * freq * t)
    frames = np.repeat(tone[:, None], channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((frames * 32767).astype("<i2").tobytes())


def write_sounds(root: Path, train: int = 6, test: int = 2) -> None:
    """Two tones as classes at 8 and 22.05 kHz, mono and stereo, of several lengths."""
    for role, n in (("train", train), ("test", test)):
        for c, freq in TONES.items():
            for i in range(n):
                rate = 8000 if i % 2 else 22050
                shift = 1 + 0.01 * i + (0.005 if role == "test" else 0.0)  # no duplicates
                write_wav(root / role / c / f"{role}{i}.wav", freq * shift, rate,
                          0.3 + 0.1 * i, channels=1 + i % 2)


def write_declared(base: Path, spec: dict[str, Any], per_class: int = 20) -> None:
    """Files for a ``from_files`` declaration at its paths, relative to ``base`` (a documented
    snippet's data): two classes with ``per_class`` training samples each, three test and
    three unlabelled samples, every one of a distinct content."""
    domain = spec["domain"]
    for role in ("train", "test", "unlabelled"):
        if spec.get(role) is None:
            continue
        path, n = base / spec[role], per_class if role == "train" else 3
        if domain == "text":
            _write_table(path, role, n, spec.get("text_column", "text"),
                         spec.get("label_column", "label"))
            continue
        classes: list[str | None] = [None] if role == "unlabelled" else ["a", "b"]
        for k, c in enumerate(classes):
            folder = path if c is None else path / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                if domain == "image":
                    rng = np.random.default_rng([k, i, len(role)])
                    pixels = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(folder / f"{role}{i}.png")
                else:
                    freq = (440.0 if c == "a" else 880.0) * (1 + 0.003 * i + 0.001 * len(role))
                    write_wav(folder / f"{role}{i}.wav", freq, 8000, 0.3)


def _write_table(path: Path, role: str, n: int, text_column: str, label_column: str) -> None:
    labels = [None] if role == "unlabelled" else ["a", "b"]
    rows = [{text_column: f"{role} text {i} of {c or 'no class'}", label_column: c or ""}
            for c in labels for i in range(n)]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return
    sep = "\t" if path.suffix in (".tsv", ".tab") else ","
    path.write_text(f"{text_column}{sep}{label_column}\n"
                    + "".join(f"{r[text_column]}{sep}{r[label_column]}\n" for r in rows))
