"""GTZAN music genres (Tzanetakis & Cook 2002) from the original ``genres.tar.gz``.

The archive holds 1,000 thirty-second tracks at 22,050 Hz, 100 per genre
(``genres/<genre>/<genre>.000NN.wav``; older copies use ``.au``, both are read). USB's README
gives 7,000 / 1,500 / 1,500 train / dev / test clips, ten per track, i.e. 3 s excerpts (its
maximum length), from its own tarball, which is no longer online (USB issues #251, #259) and
whose split is not documented. SemiBench rebuilds it
from the source: every track is resampled to 16 kHz and cut into ten consecutive 3 s segments
(the last one zero-padded if the track is a little short), and the split is made by *track*,
per genre a fixed shuffle puts 15 % of the tracks in test, 15 % in dev and the rest in train
(70 / 15 / 15 tracks per genre, hence 7,000 / 1,500 / 1,500 segments). Splitting by track keeps
segments of one song out of both train and test; a segment-level split would leak, so error
rates are not directly comparable with USB's. Labelled samples are still drawn per segment.

``jazz.00054`` is unreadable in several circulating copies of the archive: if it fails to
decode it is left out (its genre then has 99 tracks and 9,990 segments remain) and
``meta.json`` lists it under ``skipped``; any other undecodable file is an error. macOS
resource forks (``._*``) and the ``.mf`` lists in some copies are ignored.

Source: the archive published by the Marsyas project (``opihi.cs.uvic.ca``, offline since
about 2022), with the Internet Archive's copy of that URL as the fallback; both are checked
against the SHA-256 that torchaudio pins. (Re-packed copies, e.g. on the Hugging Face hub, have
other checksums and are not accepted: put a verified ``genres.tar.gz`` in the raw directory or
``$SEMIBENCH_MIRROR`` instead.) USB: 100 / 400 labels (10 / 40 per class), wav2vec 2.0 Base,
lr 2e-5, no layer decay, 3 s clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from semibench.tasks._audio import (
    USB_AUDIO_TRAIN,
    ClipConverter,
    UsbAudioTask,
    decode_members,
)
from semibench.tasks._sources import Source, SourceDataError
from semibench.tasks.base import TASKS

GENRES = (
    "blues", "classical", "country", "disco", "hiphop",
    "jazz", "metal", "pop", "reggae", "rock",
)  # fmt: skip

GTZAN_ARCHIVE = Source(
    filename="genres.tar.gz",
    known_hash="sha256:24347e0223d2ba798e0a558c4c172d9d4a19c00bb7963fe055d183dadb4ef2c6",
    urls=(
        "http://opihi.cs.uvic.ca/sound/genres.tar.gz",
        "https://web.archive.org/web/20220328223413/http://opihi.cs.uvic.ca/sound/genres.tar.gz",
    ),
)
#: tracks that some copies of the archive carry truncated; skipped only if they fail to decode
KNOWN_BAD = frozenset({"jazz.00054"})
SPLIT_SEED = 20240303


def track_of(member: str) -> tuple[str, str] | None:
    """``(genre, track id)`` of an audio member such as ``genres/jazz/jazz.00054.wav``."""
    path = PurePosixPath(member)
    if path.suffix not in (".wav", ".au") or path.name.startswith("._") or len(path.parts) < 2:
        return None
    genre = path.parts[-2]
    if genre not in GENRES or not path.stem.startswith(genre + "."):
        return None
    return genre, path.stem


def split_tracks(
    tracks: Sequence[str], test_fraction: float, dev_fraction: float, seed: int | Sequence[int]
) -> dict[str, list[str]]:
    """A fixed shuffle of one genre's (sorted) tracks: the first ``test_fraction`` to test,
    the next ``dev_fraction`` to dev, the rest to train."""
    ordered = sorted(tracks)
    order = np.random.default_rng(seed).permutation(len(ordered))
    n_test = int(round(test_fraction * len(ordered)))
    n_dev = int(round(dev_fraction * len(ordered)))
    shuffled = [ordered[i] for i in order]
    return {
        "test": sorted(shuffled[:n_test]),
        "val": sorted(shuffled[n_test : n_test + n_dev]),
        "train": sorted(shuffled[n_test + n_dev :]),
    }


@TASKS.register("gtzan")
class Gtzan(UsbAudioTask):
    name = "gtzan"
    classes = GENRES
    label_budgets = (100, 400)
    #: 7,000 segments, or 6,990 if jazz.00054 is unreadable: not fixed by the source
    num_train = None
    backbone = "wav2vec2_base"
    max_seconds = 3.0
    segments_per_track = 10
    train = {**USB_AUDIO_TRAIN, "lr": 2e-5, "layer_decay": 1.0}
    source = (
        "GTZAN genre collection (Tzanetakis & Cook 2002), Marsyas genres.tar.gz (SHA-256 "
        "24347e02...); 22,050 Hz tracks resampled to 16 kHz mono, cut into ten 3 s segments; "
        "fixed per-genre track split 70/15/15 % train/dev/test"
    )
    archive: Source = GTZAN_ARCHIVE
    test_fraction = 0.15
    dev_fraction = 0.15
    expected_counts = {"train": 7000, "val": 1500, "test": 1500}

    def read_splits(self, raw_dir: Path, converter: ClipConverter) -> tuple[dict, dict]:
        archive = raw_dir / self.archive.filename
        contents = decode_members(
            archive,
            lambda n: track_of(n) is not None,
            converter,
            "gtzan",
            tolerate=lambda n: PurePosixPath(n).stem in KNOWN_BAD,
        )
        clips, skipped = contents.clips, contents.skipped
        by_genre: dict[str, dict[str, str]] = {g: {} for g in GENRES}  # genre -> track -> member
        for member in clips:
            genre, track = track_of(member)  # type: ignore[misc]  # filtered above
            if track in by_genre[genre]:
                raise SourceDataError(f"{archive.name}: track {track} appears twice")
            by_genre[genre][track] = member
        empty = [g for g, tracks in by_genre.items() if not tracks]
        if empty:
            raise SourceDataError(f"{archive.name}: no tracks for genre(s) {empty}")
        segment = converter.length // self.segments_per_track
        xs: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
        ys: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        split_of: dict[str, dict[str, list[str]]] = {}
        for label, genre in enumerate(GENRES):
            parts = split_tracks(
                list(by_genre[genre]), self.test_fraction, self.dev_fraction, [SPLIT_SEED, label]
            )
            split_of[genre] = parts
            for split, tracks in parts.items():
                for track in tracks:
                    wave = clips.pop(by_genre[genre][track])
                    xs[split].append(wave.reshape(self.segments_per_track, segment))
                    ys[split] += [label] * self.segments_per_track
        arrays = {
            split: (
                np.concatenate(xs[split]) if xs[split] else np.zeros((0, segment), np.float32),
                np.asarray(ys[split], dtype=np.int64),
            )
            for split in xs
        }
        return arrays, {
            "segments_per_track": self.segments_per_track,
            "skipped": sorted(skipped),
            "test_tracks": sorted(t for p in split_of.values() for t in p["test"]),
            "val_tracks": sorted(t for p in split_of.values() for t in p["val"]),
        }


__all__ = ["GENRES", "KNOWN_BAD", "Gtzan", "split_tracks", "track_of"]
