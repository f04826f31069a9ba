"""The audio tasks of the USB benchmark on tiny fixtures in each source's real format.

Every fixture is written here in the source's layout: an ESC-50-like GitHub zip
(``meta/esc50.csv`` + ``audio/*.wav`` at 44.1 kHz), a GTZAN ``genres/<genre>/*`` tar.gz (with
an ``.au`` track, a broken ``jazz.00054``, a macOS resource fork and ``.mf`` lists), an
UrbanSound8K tar.gz (metadata CSV after the audio, every WAV flavour Freesound produces:
8/16/24-bit, float, extensible, stereo, IMA and MS ADPCM), the two Speech Commands tarballs
(lists, unknown words, background noise) and FSDnoisy18k's three zips. The archives are
served through ``$SEMIBENCH_MIRROR`` with the pinned hash monkeypatched to the fixture's; the
URLs point nowhere, so nothing touches the network.
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from semibench.archive import CorruptArchiveError
from semibench.audio_io import AudioDecodeError, decode_audio
from semibench.augment import build_views
from semibench.io import MIRROR_ENV, ChecksumError, sha256_file
from semibench.splits import make_split
from semibench.tasks import create_task, load_prepared
from semibench.tasks import esc50 as esc_mod
from semibench.tasks import fsdnoisy18k as fsd_mod
from semibench.tasks import gtzan as gtzan_mod
from semibench.tasks import superb_ks as ks_mod
from semibench.tasks import urbansound8k as us8k_mod
from semibench.tasks._sources import FetchError, Source
from semibench.train.config import TrainConfig

pytestmark = pytest.mark.filterwarnings("ignore:.*split sizes.*:RuntimeWarning")  # tiny fixtures
UNREACHABLE = ("http://127.0.0.1:9/never-used",)  # the mirror must serve every fixture
SR = 16_000
AUDIO_TASKS = ("esc50", "gtzan", "urbansound8k", "superb_ks", "fsdnoisy18k")


# --------------------------------------------------------------------------- audio writers


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(
        np.float32
    )


def _riff(fmt: bytes, data: bytes, frames: int | None = None) -> bytes:
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if frames is not None:
        chunks += b"fact" + struct.pack("<II", 4, frames)
    chunks += b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\0"  # odd chunk, padded
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def wav_bytes(x: np.ndarray, rate: int, kind: str = "pcm16") -> bytes:
    """A WAV file of ``x`` ([N] or [C, N] in [-1, 1]) in one of the formats real data uses."""
    x = np.atleast_2d(x)
    ch, n = x.shape
    inter = x.T.reshape(-1)
    if kind in ("pcm16", "ext16"):
        data = np.round(inter * 32767).astype("<i2").tobytes()
        fmt = struct.pack("<HHIIHH", 1, ch, rate, rate * 2 * ch, 2 * ch, 16)
        if kind == "ext16":
            guid = struct.pack("<H", 1) + bytes.fromhex("000000001000800000aa00389b71")
            fmt = struct.pack("<HHIIHH", 0xFFFE, ch, rate, rate * 2 * ch, 2 * ch, 16)
            fmt += struct.pack("<HHI", 22, 16, 0) + guid
        return _riff(fmt, data)
    if kind == "pcm8":
        data = np.round(inter * 127 + 128).astype(np.uint8).tobytes()
        return _riff(struct.pack("<HHIIHH", 1, ch, rate, rate * ch, ch, 8), data)
    if kind == "pcm24":
        v = np.round(inter * (2**23 - 1)).astype("<i4")
        data = b"".join(int(s).to_bytes(3, "little", signed=True) for s in v)
        return _riff(struct.pack("<HHIIHH", 1, ch, rate, rate * 3 * ch, 3 * ch, 24), data)
    if kind == "float32":
        data = inter.astype("<f4").tobytes()
        return _riff(struct.pack("<HHIIHH", 3, ch, rate, rate * 4 * ch, 4 * ch, 32), data)
    if kind == "ima":
        return ima_wav(np.round(x * 32767).astype(np.int64), rate)
    if kind == "ms":
        return ms_adpcm_wav(np.round(x * 32767).astype(np.int64), rate)
    raise ValueError(kind)


def au_bytes(x: np.ndarray, rate: int) -> bytes:
    """A Sun .au file: 16-bit big-endian linear PCM, mono (GTZAN's original format)."""
    data = np.round(x * 32767).astype(">i2").tobytes()
    return b".snd" + struct.pack(">IIIII", 28, len(data), 3, rate, 1) + b"\0" * 4 + data


IMA_STEPS = (  # the standard table (the codec's definition)
    7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45, 50, 55, 60, 66,
    73, 80, 88, 97, 107, 118, 130, 143, 157, 173, 190, 209, 230, 253, 279, 307, 337, 371, 408,
    449, 494, 544, 598, 658, 724, 796, 876, 963, 1060, 1166, 1282, 1411, 1552, 1707, 1878, 2066,
    2272, 2499, 2749, 3024, 3327, 3660, 4026, 4428, 4871, 5358, 5894, 6484, 7132, 7845, 8630,
    9493, 10442, 11487, 12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086, 29794,
    32767,
)  # fmt: skip
IMA_INDEX = (-1, -1, -1, -1, 2, 4, 6, 8) * 2


def ima_wav(x: np.ndarray, rate: int, block_align: int = 256, recon: list | None = None) -> bytes:
    """A textbook IMA ADPCM encoder (per block: header sample + index, then 4-bit codes);
    ``recon`` receives, per channel, the samples a decoder must reproduce."""
    ch, n = x.shape
    recon = recon if recon is not None else []
    recon += [[] for _ in range(ch)]
    per_block = (block_align - 4 * ch) * 2 // ch + 1
    index = [0] * ch
    out = bytearray()
    for start in range(0, n, per_block):
        block = x[:, start : start + per_block]
        block = np.pad(block, ((0, 0), (0, per_block - block.shape[1])), mode="edge")
        codes: list[list[int]] = [[] for _ in range(ch)]
        header = b""
        for c in range(ch):
            pred = int(block[c, 0])
            header += struct.pack("<hBB", pred, index[c], 0)
            recon[c].append(pred)
            for target in block[c, 1:]:
                step = IMA_STEPS[index[c]]
                diff, code = int(target) - pred, 0
                if diff < 0:
                    code, diff = 8, -diff
                for bit, part in ((4, step), (2, step >> 1), (1, step >> 2)):
                    if diff >= part:
                        code |= bit
                        diff -= part
                delta = step >> 3
                delta += step if code & 4 else 0
                delta += step >> 1 if code & 2 else 0
                delta += step >> 2 if code & 1 else 0
                pred = max(-32768, min(32767, pred - delta if code & 8 else pred + delta))
                index[c] = max(0, min(88, index[c] + IMA_INDEX[code]))
                codes[c].append(code)
                recon[c].append(pred)
        body = b""
        for group in range(0, per_block - 1, 8):
            for c in range(ch):
                nib = codes[c][group : group + 8]
                body += bytes(nib[i] | (nib[i + 1] << 4) for i in range(0, 8, 2))
        out += header + body
    fmt = struct.pack(
        "<HHIIHHHH", 0x11, ch, rate, rate * block_align // per_block, block_align, 4, 2, per_block
    )
    return _riff(fmt, bytes(out), frames=n)


MS_ADAPT = (230, 230, 230, 230, 307, 409, 512, 614, 768, 614, 512, 409, 307, 230, 230, 230)
MS_COEFS = ((256, 0), (512, -256), (0, 0), (192, 64), (240, 0), (460, -208), (392, -232))


def ms_adpcm_wav(
    x: np.ndarray, rate: int, block_align: int = 256, recon: list | None = None
) -> bytes:
    """A Microsoft ADPCM encoder with predictor 1 (2*s1 - s2) for every block; ``recon``
    receives, per channel, the samples a decoder must reproduce."""
    ch, n = x.shape
    recon = recon if recon is not None else []
    recon += [[] for _ in range(ch)]
    per_block = (block_align - 7 * ch) * 2 // ch + 2
    c1, c2 = MS_COEFS[1]
    out = bytearray()
    for start in range(0, n, per_block):
        block = x[:, start : start + per_block]
        block = np.pad(block, ((0, 0), (0, per_block - block.shape[1])), mode="edge")
        delta, s1, s2 = [16] * ch, [int(v) for v in block[:, 1]], [int(v) for v in block[:, 0]]
        header = bytes([1] * ch) + struct.pack(f"<{ch}h", *delta)
        header += struct.pack(f"<{ch}h", *s1) + struct.pack(f"<{ch}h", *s2)
        for c in range(ch):
            recon[c] += [s2[c], s1[c]]
        nibbles = []
        for t in range(2, per_block):
            for c in range(ch):
                pred = (s1[c] * c1 + s2[c] * c2) // 256
                code = int(max(-8, min(7, round((int(block[c, t]) - pred) / delta[c]))))
                value = max(-32768, min(32767, pred + code * delta[c]))
                s2[c], s1[c] = s1[c], value
                delta[c] = max(16, (MS_ADAPT[code & 0xF] * delta[c]) // 256)
                nibbles.append(code & 0xF)
                recon[c].append(value)
        body = bytes((nibbles[i] << 4) | nibbles[i + 1] for i in range(0, len(nibbles), 2))
        out += header + body
    fmt = struct.pack(
        "<HHIIHHHHH", 2, ch, rate, rate * block_align // per_block, block_align, 4, 32, per_block, 7
    )
    fmt += b"".join(struct.pack("<hh", *c) for c in MS_COEFS)
    return _riff(fmt, bytes(out), frames=n)


# --------------------------------------------------------------------------- archive writers


def write_tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def csv_bytes(header: list[str], rows: list[list[object]]) -> bytes:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def serve(monkeypatch: pytest.MonkeyPatch, mirror: Path, paths: list[Path]) -> list[Source]:
    """Point $SEMIBENCH_MIRROR at the fixtures; return Sources pinned to their SHA-256."""
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    return [Source(p.name, f"sha256:{sha256_file(p)}", UNREACHABLE) for p in paths]


def peak_hz(x: np.ndarray, rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.argmax(spectrum) * rate / len(x))


def run(task_name: str, root: Path) -> tuple:
    task = create_task(task_name)
    task.fetch(root / "raw")
    task.prepare(root / "raw", root / "prepared")
    return task, load_prepared(root / "prepared")


def check_prepared(task, data, max_seconds: float) -> None:
    """The checks every prepared audio task must pass."""
    length = int(max_seconds * SR)
    for split in ("train", "val", "test"):
        x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == length, split
        assert y.dtype == np.int64 and len(y) == len(x), split
        assert np.abs(x).max() <= 1.0 and np.isfinite(x).all()
        assert y.max() < task.num_classes and (y.min() >= 0 or split == "train")
    assert data.meta["sample_rate"] == SR and data.meta["domain"] == "audio"
    assert data.meta["classes"] == list(task.classes)
    assert task.validation_source == "prepared"


# --------------------------------------------------------------------------- ESC-50


def esc50_fixture(tmp: Path) -> tuple[Path, dict[str, tuple[int, int, float]]]:
    members, rows, truth = {}, [], {}
    for fold in range(1, 6):
        for target in (0, 7, 49):
            freq = 200.0 + 100 * target + 40 * fold
            name = f"{fold}-{1000 + 10 * target + fold}-A-{target}.wav"
            members[f"ESC-50-master/audio/{name}"] = wav_bytes(tone(freq, 0.5, 44100), 44100)
            rows.append([name, fold, target, esc_mod.CLASSES[target], "False", 1000, "A"])
            truth[name] = (fold, target, freq)
    header = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    members["ESC-50-master/meta/esc50.csv"] = csv_bytes(header, rows)
    members["ESC-50-master/README.md"] = b"# ESC-50\n"
    return write_zip(tmp / "ESC-50-master.zip", members), truth


def test_esc50_folds_rate_and_padding(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive, truth = esc50_fixture(mirror)
    (remote,) = serve(monkeypatch, archive.parent, [archive])
    monkeypatch.setattr(esc_mod.Esc50, "archive", remote)
    monkeypatch.setattr(esc_mod.Esc50, "expected_counts", {"train": 9, "val": 3, "test": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the sizes match: no warning
        task, data = run("esc50", tmp_path)
    check_prepared(task, data, 5.0)
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (9, 3, 3)  # folds 1-3/4/5
    assert sorted(set(data.train_y.tolist())) == [0, 7, 49]
    # row order follows the CSV: fold 1's three clips first; each keeps its tone at 16 kHz
    for x, (fold, _, freq) in zip(data.train_x[:3], list(truth.values())[:3], strict=True):
        assert fold == 1 and abs(peak_hz(x[: SR // 2]) - freq) <= 2.0
        assert 0.45 < np.abs(x[1000:7000]).max() < 0.55  # amplitude kept
        assert np.all(x[SR // 2 + 100 :] == 0)  # 0.5 s of audio, zero-padded to 5 s
    assert data.val_y.tolist() == [0, 7, 49] and data.test_y.tolist() == [0, 7, 49]
    manifest = json.loads((tmp_path / "raw" / "manifest.json").read_text())
    assert manifest["files"] == {"ESC-50-master.zip": sha256_file(archive)}
    assert data.meta["raw_checksums"] == manifest["files"]


def test_esc50_wrong_category_is_rejected(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    header = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    members = {
        "ESC-50-master/meta/esc50.csv": csv_bytes(
            header, [["1-1-A-0.wav", 1, 0, "cat", 0, 1, "A"]]
        ),
        "ESC-50-master/audio/1-1-A-0.wav": wav_bytes(tone(440, 0.1, 44100), 44100),
    }
    archive = write_zip(mirror / "ESC-50-master.zip", members)
    (remote,) = serve(monkeypatch, mirror, [archive])
    monkeypatch.setattr(esc_mod.Esc50, "archive", remote)
    task = create_task("esc50")
    task.fetch(tmp_path / "raw")
    with pytest.raises(ValueError, match="does not match the class list"):
        task.prepare(tmp_path / "raw", tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()


# --------------------------------------------------------------------------- failures


def test_checksum_mismatch_fails_fetch_and_says_where(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive, _ = esc50_fixture(mirror)
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    wrong = Source(archive.name, "sha256:" + "0" * 64, UNREACHABLE)
    monkeypatch.setattr(esc_mod.Esc50, "archive", wrong)
    task = create_task("esc50")
    with pytest.raises(FetchError) as err:
        task.fetch(tmp_path / "raw")
    message = str(err.value)
    assert "checksum does not match" in message and "ESC-50-master.zip" in message
    assert str((tmp_path / "raw").resolve()) in message and "SEMIBENCH_MIRROR" in message
    assert not (tmp_path / "raw" / "manifest.json").exists()
    with pytest.raises(FileNotFoundError):
        task.prepare(tmp_path / "raw", tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()


def test_unreachable_source_names_file_and_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    remote = Source("UrbanSound8K.tar.gz", "md5:" + "1" * 32, UNREACHABLE)
    monkeypatch.setattr(us8k_mod.UrbanSound8k, "archive", remote)
    with pytest.raises(FetchError, match=r"put it in .*raw"):
        create_task("urbansound8k").fetch(tmp_path / "raw")


def test_raw_archive_truncated_after_fetch(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive, _ = esc50_fixture(mirror)
    (remote,) = serve(monkeypatch, mirror, [archive])
    monkeypatch.setattr(esc_mod.Esc50, "archive", remote)
    task = create_task("esc50")
    task.fetch(tmp_path / "raw")
    raw = tmp_path / "raw" / archive.name
    raw.write_bytes(raw.read_bytes()[: raw.stat().st_size // 2])
    with pytest.raises(ChecksumError, match="corrupt or truncated"):
        task.prepare(tmp_path / "raw", tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()


def test_truncated_archive_with_matching_pin_is_reported(tmp_path, monkeypatch):
    """Even a truncated file that matches its pin (e.g. a bad pin) fails in prepare, naming it."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    members = {
        f"genres/blues/blues.0000{i}.wav": wav_bytes(tone(300, 1.0, 22050), 22050) for i in range(3)
    }
    full = write_tar_gz(tmp_path / "full.tar.gz", members).read_bytes()
    archive = mirror / "genres.tar.gz"
    archive.write_bytes(full[: len(full) * 2 // 3])
    (remote,) = serve(monkeypatch, mirror, [archive])
    monkeypatch.setattr(gtzan_mod.Gtzan, "archive", remote)
    task = create_task("gtzan")
    task.fetch(tmp_path / "raw")
    with pytest.raises(CorruptArchiveError, match="genres.tar.gz: the file is truncated or corrupt"):
        task.prepare(tmp_path / "raw", tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()


# --------------------------------------------------------------------------- GTZAN


def gtzan_fixture(mirror: Path, broken: str = "jazz.00054") -> Path:
    members = {"genres/input.mf": b"genres/blues/blues.00000.wav\tblues\n"}
    for g, genre in enumerate(gtzan_mod.GENRES):
        for k in range(4 if genre == "jazz" else 3):
            track = f"{genre}.{k:05d}" if not (genre == "jazz" and k == 3) else "jazz.00054"
            # segment 0 carries one tone, segment 1 another; 3.5 s: segment 1 is half full
            f0, f1 = 200 + 50 * g + 10 * k, 1200 + 50 * g + 10 * k
            x = np.concatenate([tone(f0, 3.0, 22050), tone(f1, 0.5, 22050)])
            if genre == "rock" and k == 0:
                members[f"genres/{genre}/{track}.au"] = au_bytes(x, 22050)
            else:
                members[f"genres/{genre}/{track}.wav"] = wav_bytes(x, 22050)
    members["genres/blues/._blues.00000.wav"] = b"\0\5\26\7" + b"\0" * 200  # AppleDouble
    members[f"genres/{broken.split('.')[0]}/{broken}.wav"] = b"RIFF\x24\0\0\0WAVE"  # truncated
    return write_tar_gz(mirror / "genres.tar.gz", members)


def test_gtzan_segments_and_track_split(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (remote,) = serve(monkeypatch, mirror, [gtzan_fixture(mirror)])
    monkeypatch.setattr(gtzan_mod.Gtzan, "archive", remote)
    monkeypatch.setattr(gtzan_mod.Gtzan, "test_fraction", 1 / 3)
    monkeypatch.setattr(gtzan_mod.Gtzan, "dev_fraction", 1 / 3)
    task, data = run("gtzan", tmp_path)
    check_prepared(task, data, 3.0)
    # 3 readable tracks per genre -> 1 / 1 / 1, ten 3 s segments each
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (100, 100, 100)
    assert np.bincount(data.test_y).tolist() == [10] * 10
    assert data.meta["skipped"] == ["genres/jazz/jazz.00054.wav"]
    test_tracks = set(data.meta["test_tracks"])
    assert len(test_tracks) == 10 and not test_tracks & set(data.meta["val_tracks"])
    for split in ("train", "val", "test"):  # segment 0: tone f0, 1: tone f1 (0.5 s), 2-9: silence
        x = getattr(data, f"{split}_x").reshape(-1, 10, 3 * SR)
        y = getattr(data, f"{split}_y")[::10]
        for track, label in zip(x, y, strict=True):
            f0 = peak_hz(track[0])
            assert 200 + 50 * label - 1 <= f0 <= 200 + 50 * label + 21
            assert abs(peak_hz(track[1][: SR // 2]) - (f0 + 1000)) <= 3
            assert np.all(track[1][SR // 2 + 50 :] == 0) and np.all(track[2:] == 0)


def test_gtzan_unexpected_broken_file_fails(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (remote,) = serve(monkeypatch, mirror, [gtzan_fixture(mirror, broken="rock.00007")])
    monkeypatch.setattr(gtzan_mod.Gtzan, "archive", remote)
    task = create_task("gtzan")
    task.fetch(tmp_path / "raw")
    with pytest.raises(AudioDecodeError, match="rock.00007.wav"):
        task.prepare(tmp_path / "raw", tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()


# --------------------------------------------------------------------------- UrbanSound8K

US8K_FORMATS = [  # (kind, channels, rate): what Freesound uploads look like
    ("pcm16", 1, 44100), ("pcm24", 2, 48000), ("float32", 1, 22050), ("pcm8", 1, 8000),
    ("ima", 1, 44100), ("ms", 2, 22050), ("ext16", 1, 96000), ("pcm16", 2, 11025),
]  # fmt: skip


def test_urbansound8k_folds_and_wav_flavours(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    members, rows, truth = {}, [], {}
    for fold in range(1, 11):
        for j, (kind, channels, rate) in enumerate(US8K_FORMATS[: 2 if fold < 9 else 8]):
            label = (fold + j) % 10
            freq = 300.0 + 37 * fold + 200 * j
            name = f"{100 + fold}-{label}-0-{j}.wav"
            x = tone(freq, 0.3, rate) * (np.array([[1.0], [0.6]])[:channels])
            members[f"UrbanSound8K/audio/fold{fold}/{name}"] = wav_bytes(x.squeeze(), rate, kind)
            rows.append([name, 100 + fold, 0.0, 0.3, 1, fold, label, us8k_mod.CLASSES[label]])
            truth[name] = (freq, kind)
    header = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
    members["UrbanSound8K/metadata/UrbanSound8K.csv"] = csv_bytes(header, rows)  # after audio
    archive = write_tar_gz(mirror / "UrbanSound8K.tar.gz", members)
    (remote,) = serve(monkeypatch, mirror, [archive])
    monkeypatch.setattr(us8k_mod.UrbanSound8k, "archive", remote)
    task, data = run("urbansound8k", tmp_path)
    check_prepared(task, data, 4.0)
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (16, 8, 8)
    # fold 10's clips are the test set, in CSV order, one per WAV flavour
    fold10 = [r for r in rows if r[5] == 10]
    assert data.test_y.tolist() == [r[6] for r in fold10]
    for x, row in zip(data.test_x, fold10, strict=True):
        freq, kind = truth[row[0]]
        clip = x[: int(0.3 * SR) - 40]
        assert abs(peak_hz(clip) - freq) <= 4, kind
        if kind not in ("ima", "ms"):  # lossless formats keep the amplitude (stereo: mean)
            expected = 0.4 if row[0].endswith(("-1.wav", "-7.wav")) else 0.5
            assert abs(np.abs(clip[200:]).max() - expected) < 0.02, kind
        assert np.all(x[int(0.3 * SR) + 100 :] == 0)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("encoder", [ima_wav, ms_adpcm_wav])
def test_adpcm_decoders_match_the_encoder(encoder, channels):
    x = tone(700, 0.25, 22050) + tone(2100, 0.25, 22050, amp=0.2)
    x = np.stack([x, -0.6 * x])[:channels]
    recon: list = []
    decoded, rate = decode_audio(
        encoder(np.round(x * 32767).astype(np.int64), 22050, recon=recon), "clip.wav"
    )
    assert rate == 22050 and decoded.shape == x.shape  # the fact chunk trims the last block
    want = np.asarray([r[: x.shape[1]] for r in recon], dtype=np.float32) / 32768
    np.testing.assert_array_equal(decoded, want)  # bit-exact inverse of the codec
    error = decoded - x
    assert 10 * np.log10(np.mean(x**2) / np.mean(error**2)) > 20  # and it tracks the signal


def test_undecodable_audio_is_named():
    with pytest.raises(AudioDecodeError, match="clip.mp3: not a readable audio file"):
        decode_audio(_riff(struct.pack("<HHIIHH", 0x55, 1, 8000, 1000, 1, 0), b"\0" * 10),
                     "clip.mp3")


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("kind", ["pcm16", "ext16", "pcm8", "pcm24", "float32"])
def test_lossless_wav_and_au_decode_to_the_written_samples(kind, channels):
    """libsndfile gives exactly the quantised samples each fixture format holds (checked
    against SemiBench's former hand-written decoders before they were removed)."""
    x = tone(700, 0.05, 22050)
    x = np.stack([x, -0.6 * x])[:channels]
    decoded, rate = decode_audio(wav_bytes(x.squeeze(), 22050, kind), "clip.wav")
    scale = {"pcm16": 32767, "ext16": 32767, "pcm8": 127, "pcm24": 2**23 - 1}.get(kind)
    if scale is None:
        want = x
    elif kind == "pcm8":
        want = (np.round(x * 127 + 128) - 128) / 128
    else:
        want = np.round(x * scale) / (32768 if scale == 32767 else 2**23)
    assert rate == 22050 and decoded.shape == x.shape
    np.testing.assert_array_equal(decoded, want.astype(np.float32))
    au, au_rate = decode_audio(au_bytes(x[0], 22050), "clip.au")
    assert au_rate == 22050
    np.testing.assert_array_equal(au[0], (np.round(x[0] * 32767) / 32768).astype(np.float32))


# --------------------------------------------------------------------------- Speech Commands


def test_superb_ks_lists_and_test_archive(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    train, test, expected = {}, {}, {"train": [], "val": [], "test": []}
    for w, word in enumerate(ks_mod.KEYWORDS[:4] + ("bed",)):
        for k in range(5):
            name = f"{word}/{k:08x}_nohash_0.wav"
            x = tone(300 + 100 * w + 10 * k, 0.6 + 0.1 * (k % 3), SR)
            train["./" + name] = wav_bytes(x, SR)
            if word != "bed" and k != 2:  # k == 2 is on the test list: in no split
                expected["val" if k == 1 else "train"].append((name, w))
    train["./_background_noise_/white_noise.wav"] = wav_bytes(tone(50, 3.0, SR), SR)
    val_list = [f"{w}/{1:08x}_nohash_0.wav" for w in ks_mod.KEYWORDS[:4] + ("bed",)]
    test_list = [f"{w}/{2:08x}_nohash_0.wav" for w in ks_mod.KEYWORDS[:4] + ("bed",)]
    train["./validation_list.txt"] = ("\n".join(val_list) + "\n").encode()
    train["./testing_list.txt"] = ("\n".join(test_list) + "\n").encode()
    train["./LICENSE"] = b"CC BY 4.0\n"
    for w, word in enumerate(ks_mod.KEYWORDS):
        test[f"./{word}/t{w}_nohash_0.wav"] = wav_bytes(tone(500 + 20 * w, 1.0, SR), SR)
        expected["test"].append((f"{word}/t{w}_nohash_0.wav", w))
    test["./_silence_/s_nohash_0.wav"] = wav_bytes(np.zeros(SR, np.float32), SR)
    test["./_unknown_/u_nohash_0.wav"] = wav_bytes(tone(900, 1.0, SR), SR)
    archives = [
        write_tar_gz(mirror / "speech_commands_v0.01.tar.gz", train),
        write_tar_gz(mirror / "speech_commands_test_set_v0.01.tar.gz", test),
    ]
    monkeypatch.setattr(ks_mod.SuperbKs, "archives", tuple(serve(monkeypatch, mirror, archives)))
    task, data = run("superb_ks", tmp_path)
    check_prepared(task, data, 1.0)
    for split in ("train", "val", "test"):  # sorted by path: the labels follow the words
        want = sorted(expected[split])
        assert getattr(data, f"{split}_y").tolist() == [w for _, w in want], split
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (12, 4, 10)
    first = data.train_x[0]  # down/00000000 (sorted first): 0.6 s of 600 Hz, then zeros to 1 s
    assert np.all(first[int(0.6 * SR) :] == 0)
    # exactly what was written (16 kHz PCM needs no resampling)
    np.testing.assert_allclose(first[: int(0.6 * SR)], tone(600, 0.6, SR), atol=1 / 32767)


# --------------------------------------------------------------------------- FSDnoisy18k


def test_fsdnoisy18k_fixed_labelled_and_unlabelled(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    classes = fsd_mod.CLASSES
    used = (0, 3, 17)  # Acoustic_guitar, Coin_(dropping), Walk_or_footsteps
    train_rows, train_audio, test_rows, test_audio = [], {}, [], {}
    for i in range(12):
        label = classes[used[i % 3]]
        clean = int(i < 6)
        seconds = 6.0 if i == 0 else 0.4  # the first clip is longer than 5 s
        train_rows.append([f"{10 + i}.wav", label, "/m/x", clean, int(not clean and i % 2)])
        train_audio[f"FSDnoisy18k.audio_train/{10 + i}.wav"] = wav_bytes(
            tone(250 + 30 * i, seconds, 44100), 44100
        )
    for i in range(9):
        test_rows.append([f"{100 + i}.wav", classes[used[i % 3]], "/m/x"])
        test_audio[f"FSDnoisy18k.audio_test/{100 + i}.wav"] = wav_bytes(
            tone(400 + 30 * i, 0.4, 44100), 44100
        )
    meta = {
        "FSDnoisy18k.meta/train.csv": csv_bytes(
            ["fname", "label", "aso_id", "manually_verified", "noisy_small"], train_rows
        ),
        "FSDnoisy18k.meta/test.csv": csv_bytes(["fname", "label", "aso_id"], test_rows),
    }
    archives = [
        write_zip(mirror / "FSDnoisy18k.meta.zip", meta),
        write_zip(mirror / "FSDnoisy18k.audio_train.zip", train_audio),
        write_zip(mirror / "FSDnoisy18k.audio_test.zip", test_audio),
    ]
    monkeypatch.setattr(
        fsd_mod.FsdNoisy18k, "archives", tuple(serve(monkeypatch, mirror, archives))
    )
    monkeypatch.setattr(fsd_mod.FsdNoisy18k, "dev_per_class", 1)
    with pytest.warns(RuntimeWarning, match="split sizes"):  # a fixture is not USB's size
        task, data = run("fsdnoisy18k", tmp_path)
    check_prepared(task, data, 5.0)
    assert task.fixed_labelled and data.meta["labelled_set"] == "fixed"
    assert data.train_y.tolist() == [used[i % 3] for i in range(6)] + [-1] * 6
    assert data.meta["num_train_unlabelled_only"] == 6 and data.meta["num_labelled"] == 6
    assert (len(data.val_y), len(data.test_y)) == (3, 6)
    assert np.bincount(data.val_y, minlength=20)[list(used)].tolist() == [1, 1, 1]
    assert set(data.meta["dev_from_test"]) <= {r[0] for r in test_rows}
    long_clip = data.train_x[0]  # 6 s at 44.1 kHz: its first 5 s, no padding
    assert abs(peak_hz(long_clip) - 250) <= 1 and np.abs(long_clip[-100:]).max() > 0.1
    split = make_split(
        data.train_y,
        task="fsdnoisy18k",
        num_classes=20,
        num_labels=6,
        val_per_class=0,
        seed=0,
        validation_source="prepared",
        fixed_labelled=True,
    )
    assert split.labelled == list(range(6)) and split.unlabelled == list(range(6, 12))


# --------------------------------------------------------------------------- task settings


@pytest.mark.parametrize("name", AUDIO_TASKS)
def test_task_settings_follow_usb(name):
    task = create_task(name)
    lr, decay, backbone, seconds = {
        "gtzan": (2e-5, 1.0, "wav2vec2_base", 3.0),
        "urbansound8k": (5e-5, 0.75, "hubert_base", 4.0),
        "superb_ks": (5e-5, 0.75, "wav2vec2_base", 1.0),
        "fsdnoisy18k": (5e-4, 0.75, "hubert_base", 5.0),
        "esc50": (1e-4, 0.85, "hubert_base", 5.0),
    }[name]
    config = TrainConfig.from_dict(task.train)  # every key is a trainer setting
    assert (config.lr, config.layer_decay, task.backbone) == (lr, decay, backbone)
    assert (config.optimizer, config.weight_decay, config.batch_size, config.uratio) == (
        "adamw",
        2e-5,
        8,
        1,
    )
    assert (config.iterations, config.eval_every, config.warmup_iterations) == (102_400, 2048, 5120)
    assert task.validation_source == "prepared" and task.domain == "audio"
    assert task.augment["crop_seconds"] == seconds
    views = build_views("audio", task.augment)
    half = np.pad(tone(880, seconds / 2, SR), (0, int(seconds * SR) - int(seconds / 2 * SR)))
    x = torch.from_numpy(np.stack([tone(440, seconds, SR), half]))
    for view in views.values():
        out = view(x, torch.Generator().manual_seed(0))
        assert out.shape == (2, int(seconds * SR)) and torch.isfinite(out).all()
