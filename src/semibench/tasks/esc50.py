"""ESC-50 (Piczak 2015) from its GitHub archive, as in USB: folds 1-3 train, 4 dev, 5 test.

ESC-50 specifics: 2,000 five-second clips at 44.1 kHz in 50 classes, 40 per class and fold.
``meta/esc50.csv`` gives each clip's fold and target; the category names are checked against
:data:`CLASSES`. The archive is the repository's ``master`` snapshot; its MD5 is the one
soundata, paddleaudio and HEAR's preprocessing publish, and a copy of the same bytes on
paddleaudio's server is the fallback. USB: 250 / 500 labels (5 / 10 per class), HuBERT-Base, lr 1e-4, layer decay
0.85, 5 s clips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semibench.tasks._audio import (
    USB_AUDIO_TRAIN,
    ClipConverter,
    UsbAudioTask,
    decode_members,
    read_csv_rows,
    take_clips,
)
from semibench.tasks._sources import Source
from semibench.tasks.base import TASKS, read_manifest

CLASSES = (
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
    "rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds", "water_drops", "wind",
    "pouring_water", "toilet_flush", "thunderstorm", "crying_baby", "sneezing", "clapping",
    "breathing", "coughing", "footsteps", "laughing", "brushing_teeth", "snoring",
    "drinking_sipping", "door_wood_knock", "mouse_click", "keyboard_typing", "door_wood_creaks",
    "can_opening", "washing_machine", "vacuum_cleaner", "clock_alarm", "clock_tick",
    "glass_breaking", "helicopter", "chainsaw", "siren", "car_horn", "engine", "train",
    "church_bells", "airplane", "fireworks", "hand_saw",
)  # fmt: skip

ESC50_ARCHIVE = Source(
    filename="ESC-50-master.zip",
    known_hash="md5:7771e4b9d86d0945acce719c7a59305a",
    urls=(
        "https://github.com/karolpiczak/ESC-50/archive/master.zip",
        "https://paddleaudio.bj.bcebos.com/datasets/ESC-50-master.zip",
    ),
)


@TASKS.register("esc50")
class Esc50(UsbAudioTask):
    name = "esc50"
    classes = CLASSES
    label_budgets = (250, 500)
    num_train = 1200
    backbone = "hubert_base"
    max_seconds = 5.0
    train = {**USB_AUDIO_TRAIN, "lr": 1e-4, "layer_decay": 0.85}
    source = (
        "ESC-50 (Piczak 2015), GitHub archive karolpiczak/ESC-50 master "
        "(ESC-50-master.zip, MD5 7771e4b9d86d0945acce719c7a59305a); folds 1-3 train, 4 dev, "
        "5 test; 44.1 kHz resampled to 16 kHz mono, 5 s"
    )
    archive: Source = ESC50_ARCHIVE
    folds = {"train": (1, 2, 3), "val": (4,), "test": (5,)}
    expected_counts = {"train": 1200, "val": 400, "test": 400}

    def prepare(self, raw_dir: Path, out_dir: Path) -> None:
        manifest = read_manifest(raw_dir)
        archive = Path(raw_dir) / self.archive.filename
        converter = ClipConverter(self.max_seconds)
        contents = decode_members(
            archive,
            lambda n: "/audio/" in f"/{n}" and n.endswith(".wav"),
            converter,
            "esc50",
            keep=lambda n: n.endswith("meta/esc50.csv"),
        )
        csv_name, csv_bytes = contents.file("meta/esc50.csv", archive)
        audio_dir = csv_name[: -len("meta/esc50.csv")] + "audio/"
        rows = read_csv_rows(csv_bytes, ("filename", "fold", "target", "category"), csv_name)
        for row in rows:
            target = int(row["target"])
            if not 0 <= target < len(CLASSES) or CLASSES[target] != row["category"]:
                raise ValueError(
                    f"{csv_name}: {row['filename']} has target {target} and category "
                    f"{row['category']!r}, which does not match the class list"
                )
        clips = contents.clips
        arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for split, folds in self.folds.items():
            chosen = [r for r in rows if int(r["fold"]) in folds]
            names = [audio_dir + r["filename"] for r in chosen]
            x = take_clips(clips, names, converter.length, archive.name)
            arrays[split] = x, np.array([int(r["target"]) for r in chosen], dtype=np.int64)
        self.write_splits(
            out_dir,
            arrays,
            manifest,
            extra={
                "folds": {k: list(v) for k, v in self.folds.items()},
            },
        )
