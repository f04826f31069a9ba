"""The one audio loader: every audio file SemiBench reads (a benchmark source's archive member,
an own-data task's file, a file to predict) is decoded by libsndfile through ``soundfile`` and
converted the same way: mono (channel mean), resampled to the task's rate
(``torchaudio``'s band-limited sinc with a Hann window), float32 clipped to [-1, 1], and a fixed
length: the start of the clip, zero-padded at the end.
"""

from __future__ import annotations

import io
import math
import struct
from typing import Any

import numpy as np

from semibench.errors import SemiBenchError

SAMPLE_RATE = 16_000

#: libsndfile decodes the padding of an ADPCM file's last block; the ``fact`` chunk says how
#: many frames are real
_BLOCK_CODECS = {"IMA_ADPCM", "MS_ADPCM"}


class AudioDecodeError(SemiBenchError, ValueError):
    """A file is not audio we can decode (the message names the file and why)."""


def decode_audio(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Decode any format libsndfile reads (WAV in all its codecs, AU, FLAC, OGG, MP3...):
    float32 samples ``[channels, frames]`` and the rate."""
    import soundfile

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as handle:
            samples = handle.read(dtype="float32", always_2d=True)
            rate, subtype, container = handle.samplerate, handle.subtype, handle.format
    except (soundfile.SoundFileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioDecodeError(f"{name}: not a readable audio file ({err})") from None
    if container == "WAV" and subtype in _BLOCK_CODECS:
        frames = _fact_frames(data)
        if frames is not None:
            samples = samples[:frames]
    if samples.shape[0] == 0:
        raise AudioDecodeError(f"{name}: no audio samples")
    return np.ascontiguousarray(samples.T), int(rate)


def _fact_frames(data: bytes) -> int | None:
    """The frame count of a WAV file's ``fact`` chunk, if it has one."""
    offset = 12
    while offset + 8 <= len(data):
        chunk, size = data[offset:offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        if chunk == b"fact" and size >= 4 and offset + 12 <= len(data):
            return struct.unpack_from("<I", data, offset + 8)[0]
        offset += 8 + size + (size & 1)  # chunks are word-aligned
    return None


class ClipConverter:
    """Decoded audio -> mono float32 in [-1, 1] at ``sample_rate``, exactly ``length`` samples
    (``seconds`` x the rate unless given): the start of the clip, zero padding at the end.
    Resamplers are cached per source rate."""

    def __init__(self, seconds: float | None = None, *, sample_rate: int = SAMPLE_RATE,
                 length: int | None = None) -> None:
        if length is None:
            if seconds is None:
                raise TypeError("ClipConverter needs seconds or length")
            length = int(round(seconds * sample_rate))
        self.rate, self.length = int(sample_rate), int(length)
        self._resamplers: dict[int, Any] = {}

    def __call__(self, samples: np.ndarray, rate: int) -> np.ndarray:
        import torch

        mono = samples.mean(axis=0, dtype=np.float32) if samples.ndim == 2 else samples
        # only what the output needs, plus a margin longer than the resampling filter
        needed = math.ceil(self.length * rate / self.rate) + rate // 100 + 64
        mono = np.ascontiguousarray(mono[:needed], dtype=np.float32)
        if rate != self.rate and len(mono):
            resampler = self._resamplers.get(rate)
            if resampler is None:
                import torchaudio

                resampler = torchaudio.transforms.Resample(rate, self.rate)
                self._resamplers[rate] = resampler
            with torch.no_grad():
                mono = resampler(torch.from_numpy(mono)[None]).numpy()[0]
        out = np.zeros(self.length, dtype=np.float32)
        keep = min(len(mono), self.length)
        out[:keep] = np.clip(mono[:keep], -1.0, 1.0)
        return out

    def load(self, data: bytes, name: str) -> np.ndarray:
        """Decode and convert one file's bytes."""
        return self(*decode_audio(data, name))


__all__ = ["SAMPLE_RATE", "AudioDecodeError", "ClipConverter", "decode_audio"]
