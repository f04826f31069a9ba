"""ESC-50 (Piczak 2015) from its GitHub archive, as in USB: folds 1-3 train, 4 dev, 5 test.

ESC-50 specifics: 2,000 five-second clips at 44.1 kHz in 50 classes, 40 per class and fold.
``meta/esc50.csv`` gives each clip's fold and target; the category names are checked against
:data:`CLASSES`. The archive is the repository's ``master`` snapshot; its MD5 is the one
soundata, paddleaudio and HEAR's preprocessing publish, and a copy of the same bytes on
paddleaudio's server is the fallback. USB: 250 / 500 labels (5 / 10 per class), HuBERT-Base, lr 1e-4, layer decay
0.85, 5 s clips.
"""

from __future__ import annotations

from semibench.tasks._audio import USB_AUDIO_TRAIN, FoldCsvAudioTask
from semibench.tasks._sources import Source
from semibench.tasks.base import TASKS

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
class Esc50(FoldCsvAudioTask):
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
    archive = ESC50_ARCHIVE
    metadata = "meta/esc50.csv"
    member = "audio/{file}"
    audio_folder = "/audio/"
    file_column, label_column, class_column = "filename", "target", "category"
    folds = {"train": (1, 2, 3), "val": (4,), "test": (5,)}
    expected_counts = {"train": 1200, "val": 400, "test": 400}
