"""UrbanSound8K (Salamon, Jacoby & Bello 2014) from its Zenodo record, split as in USB's
``preprocess_urbansound.py``: folds 1-8 train (7,079), fold 9 dev (816), fold 10 test (837).

The archive ``UrbanSound8K.tar.gz`` holds ``metadata/UrbanSound8K.csv`` (``slice_file_name``,
``fold``, ``classID``, ``class``) and ``audio/fold<k>/*.wav``: 8,732 excerpts of at most 4 s in
whatever format the Freesound uploader used (8/16/24/32-bit PCM, float, 4-bit ADPCM, mono or
stereo, 8-192 kHz). Every format is decoded here without an audio library; USB loads them with
librosa, which also averages the channels and resamples to 16 kHz (with soxr instead of
torchaudio's sinc filter: a negligible difference). Class names are checked against
:data:`CLASSES` (the ``classID`` order).

The Zenodo record is open (no form to fill), so ``fetch`` downloads it directly; the MD5 is
the one soundata pins. USB: 100 / 400 labels (10 / 40 per class), HuBERT-Base, lr 5e-5, layer
decay 0.75, 4 s clips.
"""

from __future__ import annotations

from semibench.tasks._audio import USB_AUDIO_TRAIN, FoldCsvAudioTask
from semibench.tasks._sources import Source
from semibench.tasks.base import TASKS

CLASSES = (
    "air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
    "engine_idling", "gun_shot", "jackhammer", "siren", "street_music",
)  # fmt: skip

US8K_ARCHIVE = Source(
    filename="UrbanSound8K.tar.gz",
    known_hash="md5:9aa69802bbf37fb986f71ec1483a196e",
    urls=("https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz?download=1",),
)


@TASKS.register("urbansound8k")
class UrbanSound8k(FoldCsvAudioTask):
    name = "urbansound8k"
    classes = CLASSES
    label_budgets = (100, 400)
    num_train = 7079
    backbone = "hubert_base"
    max_seconds = 4.0
    train = {**USB_AUDIO_TRAIN, "lr": 5e-5, "layer_decay": 0.75}
    source = (
        "UrbanSound8K (Salamon et al. 2014), Zenodo record 1203745 (UrbanSound8K.tar.gz, MD5 "
        "9aa69802bbf37fb986f71ec1483a196e); folds 1-8 train, 9 dev, 10 test; resampled to "
        "16 kHz mono, 4 s"
    )
    archive = US8K_ARCHIVE
    metadata = "metadata/UrbanSound8K.csv"
    member = "audio/fold{fold}/{file}"
    audio_folder = "/audio/fold"
    file_column, label_column, class_column = "slice_file_name", "classID", "class"
    folds = {"train": tuple(range(1, 9)), "val": (9,), "test": (10,)}
    expected_counts = {"train": 7079, "val": 816, "test": 837}


__all__ = ["CLASSES", "UrbanSound8k"]
