"""Helpers shared by the audio sources of the real USB benchmark (``esc50``, ``gtzan``,
``urbansound8k``, ``superb_ks``, ``fsdnoisy18k``): checksummed downloads with mirrors, reading
members straight out of tar/zip archives (nothing is extracted to disk, so there is no
path-traversal risk and no second copy of the data), decoding WAV (PCM, float, IMA/MS ADPCM)
and Sun ``.au`` without any audio library, and the conversion every source gets: mono
(channel mean), 16 kHz (``torchaudio.functional.resample``, band-limited sinc with a Hann
window), float32 clipped to [-1, 1], and a fixed length: the first ``max_seconds`` of the clip,
zero-padded at the end. The fixed length is USB's ``max_length_seconds`` of the task; USB's
collator likewise keeps the first ``max_length`` samples for evaluation, but its training
crops are drawn from the whole clip, which the ``[N, T]`` prepared format cannot hold (this
only matters for clips longer than the limit: GTZAN tracks, which are cut into segments
instead, and some FSDnoisy18k clips).
"""

from __future__ import annotations

import csv
import io
import math
import struct
import sys
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np

from semibench.errors import SemiBenchError
from semibench.io import fetch_url, sha256_file
from semibench.tasks.base import Task, write_manifest, write_prepared

SAMPLE_RATE = 16_000

#: USB's audio training protocol (config/usb_audio): AdamW, weight decay 2e-5, batch 8, uratio 1,
#: 100 x 1,024 iterations, evaluation every 2,048 with batch 16, 5,120 warm-up iterations, no
#: EMA (ema_m 0; MeanTeacher/SimMatch override it), separate forward passes (use_cat False)
USB_AUDIO_TRAIN: dict[str, Any] = {
    "iterations": 102_400,
    "eval_every": 2_048,
    "batch_size": 8,
    "uratio": 1,
    "eval_batch_size": 16,
    "optimizer": "adamw",
    "weight_decay": 2e-5,
    "warmup_iterations": 5_120,
    "ema_m": 0.0,
    "use_cat": False,
}


def usb_audio_augment(max_seconds: float) -> dict[str, Any]:
    """USB's audio views for waveform backbones: crops of the task's maximum length."""
    return {
        "sample_rate": SAMPLE_RATE,
        "crop_seconds": max_seconds,
        "features": "waveform",
        "strong_effects": "usb",
    }


# --------------------------------------------------------------------------- downloads


class FetchError(SemiBenchError, RuntimeError):
    """No source gave a file with the pinned checksum; the message says what to put where."""


@dataclass(frozen=True)
class RemoteFile:
    """One source file: its name in ``raw_dir``, its pinned checksum, and where to get it."""

    filename: str
    #: ``"sha256:<hex>"`` or the source's published ``"md5:<hex>"``
    known_hash: str
    #: tried in order; the first one that yields the pinned checksum wins
    urls: tuple[str, ...]


def fetch_remote_files(task: Task, files: Sequence[RemoteFile], raw_dir: Path) -> None:
    """Get and verify every file (``$SEMIBENCH_MIRROR`` first, then each URL), then record
    their SHA-256 in ``raw_dir/manifest.json``. Nothing is recorded if any file fails."""
    raw_dir = Path(raw_dir)
    digests = {}
    for remote in files:
        errors = []
        path = None
        for url in remote.urls:
            try:
                path = fetch_url(url, remote.known_hash, raw_dir, remote.filename)
                break
            except Exception as err:  # noqa: BLE001 - every mirror's failure goes in the report
                errors.append(f"  {url}: {type(err).__name__}: {err}")
        if path is None:
            raise FetchError(
                f"{task.name}: could not get {remote.filename} ({remote.known_hash}):\n"
                + "\n".join(errors)
                + f"\nDownload {remote.filename} yourself, check that its checksum is "
                f"{remote.known_hash}, and put it in {raw_dir.resolve()} (or in the directory "
                "named by $SEMIBENCH_MIRROR); then run fetch again."
            )
        digests[remote.filename] = sha256_file(path)
    write_manifest(raw_dir, task.name, task.source, digests)


# --------------------------------------------------------------------------- archives


class ArchiveError(SemiBenchError, RuntimeError):
    """A source archive is corrupt, truncated or lacks files its metadata lists."""


def _member_name(name: str) -> str:
    """Archive member name without a leading ``./`` (tar files made with ``tar -C . ``)."""
    return PurePosixPath(name).as_posix().removeprefix("./")


def iter_archive(path: Path, wanted: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """Yield ``(member name, bytes)`` for the regular files of a tar or zip archive whose name
    passes ``wanted``, in archive order, reading the archive once and extracting nothing."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    name = _member_name(info.filename)
                    if not info.is_dir() and wanted(name):
                        yield name, archive.read(info)  # checks the member's CRC
        else:
            with tarfile.open(path, mode="r|*") as archive:  # streaming: one pass, no seeks
                for member in archive:
                    name = _member_name(member.name)
                    if member.isfile() and wanted(name):
                        handle = archive.extractfile(member)
                        assert handle is not None  # regular files always have data
                        yield name, handle.read()
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise ArchiveError(
            f"{path}: corrupt or truncated archive ({type(err).__name__}: {err}); delete it "
            "and fetch again"
        ) from err


def read_csv_rows(data: bytes, required: Sequence[str], source: str) -> list[dict[str, str]]:
    """Rows of a CSV file (UTF-8, header line) that must have the ``required`` columns."""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    missing = sorted(set(required) - set(reader.fieldnames or ()))
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; found {reader.fieldnames}")
    return list(reader)


# --------------------------------------------------------------------------- decoding


class AudioDecodeError(SemiBenchError, ValueError):
    """A file is not audio we can decode (the message names the file and why)."""


_WAVE_PCM, _WAVE_MS_ADPCM, _WAVE_FLOAT, _WAVE_IMA_ADPCM, _WAVE_EXTENSIBLE = 1, 2, 3, 0x11, 0xFFFE

_IMA_STEPS = (
    7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45, 50, 55, 60, 66,
    73, 80, 88, 97, 107, 118, 130, 143, 157, 173, 190, 209, 230, 253, 279, 307, 337, 371, 408,
    449, 494, 544, 598, 658, 724, 796, 876, 963, 1060, 1166, 1282, 1411, 1552, 1707, 1878, 2066,
    2272, 2499, 2749, 3024, 3327, 3660, 4026, 4428, 4871, 5358, 5894, 6484, 7132, 7845, 8630,
    9493, 10442, 11487, 12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086, 29794,
    32767,
)  # fmt: skip
_IMA_INDEX_STEP = (-1, -1, -1, -1, 2, 4, 6, 8) * 2
_MS_ADAPT = (230, 230, 230, 230, 307, 409, 512, 614, 768, 614, 512, 409, 307, 230, 230, 230)
_MS_COEFS = ((256, 0), (512, -256), (0, 0), (192, 64), (240, 0), (460, -208), (392, -232))


def decode_audio(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Decode a WAV or Sun ``.au`` file: float32 samples ``[channels, frames]`` and the rate."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return _decode_wav(data, name)
    if data[:4] == b".snd":
        return _decode_au(data, name)
    raise AudioDecodeError(f"{name}: neither a RIFF/WAVE nor a Sun .au file")


def _decode_wav(data: bytes, name: str) -> tuple[np.ndarray, int]:
    fmt, payload, frames_hint = None, None, None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = data[offset : offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        body = data[offset + 8 : offset + 8 + size]  # a truncated last chunk keeps what is there
        if chunk_id == b"fmt ":
            fmt = body
        elif chunk_id == b"data":
            payload = body
        elif chunk_id == b"fact" and len(body) >= 4:
            frames_hint = struct.unpack_from("<I", body)[0]
        offset += 8 + size + (size & 1)  # chunks are word-aligned
    if fmt is None or len(fmt) < 16 or payload is None:
        raise AudioDecodeError(f"{name}: WAV without a fmt or data chunk")
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _WAVE_EXTENSIBLE:
        if len(fmt) < 26:
            raise AudioDecodeError(f"{name}: WAVE_FORMAT_EXTENSIBLE without a sub-format")
        tag = struct.unpack_from("<H", fmt, 24)[0]  # first two bytes of the sub-format GUID
    if channels < 1 or rate < 1:
        raise AudioDecodeError(f"{name}: {channels} channels at {rate} Hz")
    if tag in (_WAVE_PCM, _WAVE_FLOAT):
        samples = _decode_pcm(payload, tag, bits, channels, name)
    elif tag == _WAVE_IMA_ADPCM:
        samples = _decode_ima_adpcm(payload, channels, block_align, name)
    elif tag == _WAVE_MS_ADPCM:
        samples = _decode_ms_adpcm(payload, channels, block_align, fmt, name)
    else:
        raise AudioDecodeError(f"{name}: unsupported WAV format tag 0x{tag:04x}")
    if frames_hint is not None and tag in (_WAVE_IMA_ADPCM, _WAVE_MS_ADPCM):
        samples = samples[:, :frames_hint]  # the last ADPCM block is padded
    return samples, rate


def _decode_pcm(payload: bytes, tag: int, bits: int, channels: int, name: str) -> np.ndarray:
    width = (bits + 7) // 8
    if width == 0:
        raise AudioDecodeError(f"{name}: 0 bits per sample")
    usable = len(payload) - len(payload) % (width * channels)
    raw = np.frombuffer(payload, dtype=np.uint8, count=usable)
    if tag == _WAVE_FLOAT:
        if width not in (4, 8):
            raise AudioDecodeError(f"{name}: {bits}-bit float samples")
        x = raw.view("<f4" if width == 4 else "<f8").astype(np.float32)
    elif width == 1:
        x = (raw.astype(np.float32) - 128.0) / 128.0  # 8-bit WAV is unsigned
    elif width in (2, 4):
        x = raw.view("<i2" if width == 2 else "<i4").astype(np.float32) / 2.0 ** (8 * width - 1)
    elif width == 3:
        b = raw.reshape(-1, 3).astype(np.int32)
        value = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8  # sign lands in bit 31
        x = value.astype(np.float32) / 2.0**31
    else:
        raise AudioDecodeError(f"{name}: {bits}-bit integer samples")
    return x.reshape(-1, channels).T.copy()


def _decode_ima_adpcm(payload: bytes, channels: int, block_align: int, name: str) -> np.ndarray:
    """Microsoft IMA ADPCM: per block and channel a header (first sample, step index), then
    4-bit codes in 4-byte groups per channel, low nibble first."""
    header = 4 * channels
    if block_align <= header or (block_align - header) % (4 * channels):
        raise AudioDecodeError(f"{name}: IMA ADPCM block size {block_align}")
    out: list[list[int]] = [[] for _ in range(channels)]
    for start in range(0, len(payload) - header + 1, block_align):
        block = payload[start : start + block_align]
        predictors, indices = [], []
        for ch in range(channels):
            sample, index = struct.unpack_from("<hB", block, 4 * ch)
            predictors.append(sample)
            indices.append(min(index, 88))
            out[ch].append(sample)
        body = block[header:]
        for group in range(0, len(body) - 4 * channels + 1, 4 * channels):
            for ch in range(channels):
                pred, index, dest = predictors[ch], indices[ch], out[ch]
                for byte in body[group + 4 * ch : group + 4 * ch + 4]:
                    for code in (byte & 0x0F, byte >> 4):
                        step = _IMA_STEPS[index]
                        diff = step >> 3
                        if code & 4:
                            diff += step
                        if code & 2:
                            diff += step >> 1
                        if code & 1:
                            diff += step >> 2
                        pred = max(-32768, min(32767, pred - diff if code & 8 else pred + diff))
                        index = max(0, min(88, index + _IMA_INDEX_STEP[code]))
                        dest.append(pred)
                predictors[ch], indices[ch] = pred, index
    frames = min(len(samples) for samples in out)
    return np.asarray([samples[:frames] for samples in out], dtype=np.float32) / 32768.0


def _decode_ms_adpcm(
    payload: bytes, channels: int, block_align: int, fmt: bytes, name: str
) -> np.ndarray:
    """Microsoft ADPCM: per block and channel a predictor, delta and two history samples,
    then signed 4-bit codes, high nibble first (channels interleaved by nibble)."""
    coefs = list(_MS_COEFS)
    if len(fmt) >= 22:
        count = struct.unpack_from("<H", fmt, 20)[0]
        if count and len(fmt) >= 22 + 4 * count:
            coefs = [struct.unpack_from("<hh", fmt, 22 + 4 * i) for i in range(count)]
    header = 7 * channels
    if block_align <= header:
        raise AudioDecodeError(f"{name}: MS ADPCM block size {block_align}")
    out: list[list[int]] = [[] for _ in range(channels)]
    for start in range(0, len(payload) - header + 1, block_align):
        block = payload[start : start + block_align]
        predictor = [block[ch] for ch in range(channels)]
        delta = list(struct.unpack_from(f"<{channels}h", block, channels))
        s1 = list(struct.unpack_from(f"<{channels}h", block, 3 * channels))
        s2 = list(struct.unpack_from(f"<{channels}h", block, 5 * channels))
        if max(predictor) >= len(coefs):
            raise AudioDecodeError(f"{name}: MS ADPCM predictor index {max(predictor)}")
        for ch in range(channels):
            out[ch] += [s2[ch], s1[ch]]
        ch = 0
        for byte in block[header:]:
            for code in (byte >> 4, byte & 0x0F):
                c1, c2 = coefs[predictor[ch]]
                signed = code - 16 if code & 8 else code
                value = (s1[ch] * c1 + s2[ch] * c2) // 256 + signed * delta[ch]
                value = max(-32768, min(32767, value))
                s2[ch], s1[ch] = s1[ch], value
                delta[ch] = max(16, (_MS_ADAPT[code] * delta[ch]) // 256)
                out[ch].append(value)
                ch = (ch + 1) % channels
    frames = min(len(samples) for samples in out)
    return np.asarray([samples[:frames] for samples in out], dtype=np.float32) / 32768.0


_AU_FORMATS = {2: ">i1", 3: ">i2", 5: ">i4", 6: ">f4", 7: ">f8"}  # 4 (24-bit) handled below


def _decode_au(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Sun/NeXT ``.au``: big-endian header (offset, size, encoding, rate, channels)."""
    if len(data) < 24:
        raise AudioDecodeError(f"{name}: .au header truncated")
    offset, size, encoding, rate, channels = struct.unpack_from(">IIIII", data, 4)
    if channels < 1 or rate < 1 or offset < 24:
        raise AudioDecodeError(f"{name}: .au header says {channels} channels at {rate} Hz")
    payload = data[offset:] if size == 0xFFFFFFFF else data[offset : offset + size]
    if encoding == 1:  # 8-bit G.711 mu-law
        codes = ~np.frombuffer(payload, dtype=np.uint8).astype(np.int32) & 0xFF
        magnitude = ((((codes & 0x0F) << 3) + 0x84) << ((codes & 0x70) >> 4)) - 0x84
        x = np.where(codes & 0x80, -magnitude, magnitude).astype(np.float32) / 32768.0
    elif encoding == 4:
        usable = len(payload) - len(payload) % 3
        b = np.frombuffer(payload, dtype=np.uint8, count=usable).reshape(-1, 3).astype(np.int32)
        x = (((b[:, 0] << 24) | (b[:, 1] << 16) | (b[:, 2] << 8)).astype(np.float32)) / 2.0**31
    elif encoding in _AU_FORMATS:
        dtype = np.dtype(_AU_FORMATS[encoding])
        usable = len(payload) - len(payload) % dtype.itemsize
        x = np.frombuffer(payload, dtype=dtype, count=usable // dtype.itemsize).astype(np.float32)
        if dtype.kind == "i":
            x /= 2.0 ** (8 * dtype.itemsize - 1)
    else:
        raise AudioDecodeError(f"{name}: unsupported .au encoding {encoding}")
    usable = len(x) - len(x) % channels
    return x[:usable].reshape(-1, channels).T.copy(), rate


# --------------------------------------------------------------------------- conversion


class ClipConverter:
    """Decoded audio -> mono, 16 kHz, float32 in [-1, 1], exactly ``seconds`` long (the start
    of the clip; zero padding at the end). Resamplers are cached per source rate."""

    def __init__(self, seconds: float) -> None:
        self.length = int(round(seconds * SAMPLE_RATE))
        self._resamplers: dict[int, Any] = {}

    def __call__(self, samples: np.ndarray, rate: int) -> np.ndarray:
        import torch

        mono = samples.mean(axis=0, dtype=np.float32) if samples.ndim == 2 else samples
        # only what the output needs, plus a margin longer than the resampling filter
        needed = math.ceil(self.length * rate / SAMPLE_RATE) + rate // 100 + 64
        mono = np.ascontiguousarray(mono[:needed], dtype=np.float32)
        if rate != SAMPLE_RATE and len(mono):
            resampler = self._resamplers.get(rate)
            if resampler is None:
                import torchaudio

                resampler = torchaudio.transforms.Resample(rate, SAMPLE_RATE)
                self._resamplers[rate] = resampler
            with torch.no_grad():
                mono = resampler(torch.from_numpy(mono)[None]).numpy()[0]
        out = np.zeros(self.length, dtype=np.float32)
        keep = min(len(mono), self.length)
        out[:keep] = np.clip(mono[:keep], -1.0, 1.0)
        return out


@dataclass
class ArchiveContents:
    """What one pass over an archive gave: converted clips, raw metadata files, and the audio
    members that failed to decode but that the source is known to carry broken."""

    clips: dict[str, np.ndarray]
    files: dict[str, bytes]
    skipped: list[str]

    def file(self, suffix: str, archive: Path) -> tuple[str, bytes]:
        """The one kept file named ``suffix`` or ending in ``/suffix``."""
        name = find_member(list(self.files), suffix, archive)
        return name, self.files[name]


def decode_members(
    archive: Path,
    is_audio: Callable[[str], bool],
    convert: Callable[[np.ndarray, int], np.ndarray],
    desc: str,
    *,
    keep: Callable[[str], bool] = lambda name: False,
    tolerate: Callable[[str], bool] = lambda name: False,
) -> ArchiveContents:
    """One pass over an archive: decode and convert every ``is_audio`` member and keep the
    bytes of every ``keep`` member (metadata). An undecodable member raises unless
    ``tolerate`` accepts its name (a source's known-bad file), then it is listed as skipped.
    """
    from tqdm import tqdm

    contents = ArchiveContents({}, {}, [])
    members = iter_archive(archive, lambda n: is_audio(n) or keep(n))
    for name, data in tqdm(members, desc=desc, unit="file", file=sys.stderr, disable=None):
        if keep(name):
            contents.files[name] = data
            continue
        try:
            samples, rate = decode_audio(data, name)
            if samples.shape[1] == 0:
                raise AudioDecodeError(f"{name}: no audio samples")
        except (AudioDecodeError, struct.error) as err:
            if tolerate(name):
                contents.skipped.append(name)
                continue
            raise AudioDecodeError(f"{archive.name}: {err}") from err
        contents.clips[name] = convert(samples, rate)
    return contents


def read_files(archive: Path, keep: Callable[[str], bool]) -> ArchiveContents:
    """One pass over an archive keeping the bytes of the ``keep`` members (metadata)."""
    return decode_members(archive, lambda n: False, lambda x, rate: x, archive.name, keep=keep)


def take_clips(
    clips: dict[str, np.ndarray], names: Sequence[str], length: int, source: str
) -> np.ndarray:
    """Stack the named clips into ``[N, length]`` float32, removing them from ``clips`` as it
    goes (so the peak memory stays near one copy of the data)."""
    missing = [n for n in names if n not in clips]
    if missing:
        raise ArchiveError(
            f"{source}: {len(missing)} file(s) listed in the metadata are missing from the "
            f"archive, e.g. {missing[:3]}"
        )
    out = np.empty((len(names), length), dtype=np.float32)
    for i, name in enumerate(names):
        out[i] = clips.pop(name)
    return out


def check_counts(task: Task, counts: dict[str, int], expected: dict[str, int]) -> None:
    """Warn (do not fail) when split sizes differ from the published ones (USB's, or the
    source's where USB's are off): a different archive version or a parsing change shows up
    here, while a fixture or a deliberate subset still prepares."""
    differ = {k: (counts.get(k), v) for k, v in expected.items() if counts.get(k) != v}
    if differ:
        warnings.warn(
            f"{task.name}: split sizes (got, published) differ: {differ}",
            RuntimeWarning,
            stacklevel=2,
        )


# --------------------------------------------------------------------------- ESC-50


def find_member(names: Sequence[str], suffix: str, archive: Path) -> str:
    """The one member named ``suffix`` or ending in ``/suffix`` (archives differ in their
    top-level folder, e.g. ``ESC-50-master/`` or ``ESC-50-<commit>/``)."""
    found = [n for n in names if n == suffix or n.endswith("/" + suffix)]
    if len(found) != 1:
        raise ArchiveError(f"{archive}: expected one {suffix!r}, found {found[:5]}")
    return found[0]


class UsbAudioTask(Task):
    """What USB's audio tasks share: the source's development split validates (no validation
    drawn from the pool), clips are cut to ``max_seconds`` at 16 kHz with USB's audio views
    (``usb_audio_augment``), fetching downloads ``archives`` (or the one ``archive``)."""

    domain = "audio"
    val_per_class = 0
    validation_source = "prepared"
    max_seconds: ClassVar[float]
    expected_counts: ClassVar[dict[str, int]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "max_seconds" in cls.__dict__ and "augment" not in cls.__dict__:
            cls.augment = usb_audio_augment(cls.max_seconds)

    def remote_files(self) -> tuple[RemoteFile, ...]:
        return tuple(getattr(self, "archives", ())) or (self.archive,)

    def fetch(self, raw_dir: Path) -> None:
        fetch_remote_files(self, self.remote_files(), raw_dir)

    def write_splits(
        self,
        out_dir: Path,
        arrays: dict[str, tuple[np.ndarray, np.ndarray]],
        manifest: dict[str, Any],
        extra: dict[str, Any],
    ) -> None:
        """Check the split sizes against the published ones, then write the prepared data
        (train, the source's dev split as val, test)."""
        check_counts(self, {k: len(v[1]) for k, v in arrays.items()}, self.expected_counts)
        write_prepared(
            out_dir,
            task=self,
            train_x=arrays["train"][0],
            train_y=arrays["train"][1],
            val_x=arrays["val"][0],
            val_y=arrays["val"][1],
            test_x=arrays["test"][0],
            test_y=arrays["test"][1],
            raw_checksums=manifest["files"],
            extra={
                "sample_rate": SAMPLE_RATE,
                "max_seconds": self.max_seconds,
                "expected_counts": self.expected_counts,
                **extra,
            },
        )


__all__ = [
    "UsbAudioTask",
    "ArchiveContents",
    "ArchiveError",
    "AudioDecodeError",
    "ClipConverter",
    "FetchError",
    "RemoteFile",
    "SAMPLE_RATE",
    "USB_AUDIO_TRAIN",
    "check_counts",
    "decode_audio",
    "decode_members",
    "fetch_remote_files",
    "find_member",
    "iter_archive",
    "read_csv_rows",
    "read_files",
    "take_clips",
    "usb_audio_augment",
]
