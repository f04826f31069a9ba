"""Spoken keywords synthesised offline with the espeak-ng library shipped in ``espeakng_loader``.

Ten Speech-Commands-style keywords are spoken by many espeak-ng voices (English accents x voice
variants) at random rate, pitch and pitch range, then each clip gets a random time offset in a
one-second window, background noise (white, pink or brown) at a random SNR and a random gain, and
is resampled from espeak's 22,050 Hz to 16 kHz.

Speaker split: the voice *variants* (``m1``, ``f3``, ``croak``, ...; they set formants, pitch and
voice quality, i.e. who speaks) are split once into disjoint train and test sets; accents are
shared. So no test clip is spoken by a train voice.

Reproducibility: every random choice comes from ``numpy.random.default_rng`` with a fixed seed.
espeak-ng itself keeps hidden state between utterances (function-level statics such as the pitch
flutter index, which neither ``espeak_Terminate`` nor ``espeak_ng_SetRandSeed`` reset), so the
waveform of a word depends on what the process synthesised before. Synthesis therefore always
runs in a fresh child process per split, with one initialised library in that process. Breathy
voices also mix in noise from espeak's generator, which is seeded from the clock, so every clip
sets its own drawn seed with ``espeak_ng_SetRandSeed``. ``prepare`` checks that the library and
its data files are the ones ``fetch`` recorded.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import multiprocessing
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from semibench.errors import SemiBenchError
from semibench.io import atomic_write_json, read_json, sha256_file
from semibench.tasks.base import TASKS, Task, read_manifest, write_manifest, write_prepared

T = TypeVar("T")

ESPEAK_RATE = 22_050  # what espeak-ng's formant synthesiser produces
SAMPLE_RATE = 16_000  # what the prepared data holds
CLIP_SECONDS = 1.0

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_INITIALIZE_DONT_EXIT = 0x8000  # return errors instead of calling exit()
_POS_CHARACTER = 1
_ESPEAK_CHARS_AUTO = 0
_ESPEAK_RATE, _ESPEAK_VOLUME, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 2, 3, 4
_EE_OK = 0

#: background noise colours and their spectral exponents (power ~ 1/f**exponent)
NOISE_COLOURS: tuple[str, ...] = ("white", "pink", "brown")
NOISE_EXPONENTS: tuple[float, ...] = (0.0, 1.0, 2.0)

#: espeak-ng English voices (accents); each is a file under espeak-ng-data/lang/gmw
ACCENTS: tuple[str, ...] = (
    "en",
    "en-us",
    "en-us-nyc",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
)
#: voice variants under espeak-ng-data/voices/!v (all that espeak-ng 1.52 ships, less "Mr serious"
#: whose name has a space); pinned here so that the data does not depend on what else is installed
VARIANTS: tuple[str, ...] = (
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "AnxiousAndy", "Demonic", "Denis", "Diogo",
    "Gene", "Gene2", "Henrique", "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike",
    "Nguyen", "Reed", "RicishayMax", "RicishayMax2", "RicishayMax3", "Storm", "Tweaky",
    "UniRobot", "adam", "anika", "anikaRobot", "announcer", "antonio", "aunty", "belinda",
    "benjamin", "boris", "caleb", "croak", "david", "ed", "edward", "edward2",
    "f1", "f2", "f3", "f4", "f5", "fast", "grandma", "grandpa", "gustave", "ian",
    "iven", "iven2", "iven3", "iven4", "john", "kaukovalta",
    "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "linda",
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "marcelo", "max", "michel", "miguel",
    "mike2", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert",
    "robosoft", "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft6", "robosoft7",
    "robosoft8", "sandro", "shelby", "steph", "steph2", "steph3", "travis", "victor",
    "whisper", "whisperf", "zac",
)  # fmt: skip

#: one synthesis request: (text, voice name, rate in words/min, pitch 0-100, pitch range 0-100,
#: seed of espeak-ng's noise generator, used by breathy voices)
Job = tuple[str, str, int, int, int, int]


# --------------------------------------------------------------------------- espeak-ng library


@functools.cache
def _load_library() -> ctypes.CDLL:
    """dlopen espeak-ng and declare the prototypes we use (loading alone touches no state)."""
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [ctypes.c_void_p]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,  # text
        ctypes.c_size_t,  # size
        ctypes.c_uint,  # position
        ctypes.c_int,  # position_type
        ctypes.c_uint,  # end_position
        ctypes.c_uint,  # flags
        ctypes.c_void_p,  # unique_identifier
        ctypes.c_void_p,  # user_data
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = None
    return lib


def espeak_version() -> str:
    """The espeak-ng version string reported by the library, or "unknown" without it."""
    try:
        return _load_library().espeak_Info(None).decode()
    except (ImportError, OSError, AttributeError):
        return "unknown"


# int callback(short *wav, int numsamples, espeak_EVENT *events)
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakError(SemiBenchError, RuntimeError):
    """The installed espeak-ng cannot make the task's clips, or is not the one fetch recorded."""


class _Espeak:
    """The one initialised espeak-ng of this process, in synchronous (callback) mode."""

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = _load_library()
        data = espeakng_loader.get_data_path().encode()
        rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _ESPEAK_INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {rate})")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._callback = _SynthCallback(self._collect)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(ctypes.cast(self._callback, ctypes.c_void_p))

    def _collect(self, wav: Any, num_samples: int, _events: Any) -> int:
        if num_samples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # 0 = continue synthesis

    def synth(
        self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, seed: int = 0
    ) -> np.ndarray:
        """Speak ``text``; return its int16 samples at ``self.sample_rate``."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise RuntimeError(f"espeak-ng has no voice {voice!r}")
        for param, value in (
            (_ESPEAK_RATE, rate),
            (_ESPEAK_VOLUME, 100),
            (_ESPEAK_PITCH, pitch),
            (_ESPEAK_RANGE, pitch_range),
        ):
            self.lib.espeak_SetParameter(param, int(value), 0)
        # breathy voices mix in noise from espeak's generator, which is seeded from the clock
        self.lib.espeak_ng_SetRandSeed(int(seed))
        self._chunks = []
        data = text.encode()
        status = self.lib.espeak_Synth(
            data, len(data) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_AUTO, None, None
        )
        self.lib.espeak_Synchronize()
        if status != _EE_OK:
            raise RuntimeError(f"espeak_Synth({text!r}, {voice!r}) failed with status {status}")
        if not self._chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._chunks).astype(np.int16, copy=False)


_ENGINE: _Espeak | None = None


def _fresh_engine() -> _Espeak:
    """Initialise this process's espeak-ng; refuse if it has spoken already (see module doc)."""
    global _ENGINE
    if _ENGINE is not None:
        raise RuntimeError(
            "espeak-ng was already used in this process; keyword synthesis must start from a "
            "fresh process to be reproducible"
        )
    _ENGINE = _Espeak()
    return _ENGINE


def _synthesise_jobs(jobs: Sequence[Job], desc: str) -> list[np.ndarray]:
    """Child-process entry point: speak every job in order with a fresh library."""
    from tqdm import tqdm

    engine = _fresh_engine()
    if engine.sample_rate != ESPEAK_RATE:
        raise RuntimeError(f"espeak-ng produces {engine.sample_rate} Hz, expected {ESPEAK_RATE}")
    return [engine.synth(*job) for job in tqdm(jobs, desc=desc, file=sys.stderr, unit="clip")]


def _probe_voices(voices: Sequence[str], text: str) -> tuple[int, list[str]]:
    """Child-process entry point: sample rate, and the voices that speak ``text`` audibly."""
    engine = _fresh_engine()
    silent = []
    for voice in voices:
        wav = engine.synth(text, voice, 175, 50, 50)
        if len(wav) == 0 or np.abs(wav.astype(np.int32)).max() < 1000:
            silent.append(voice)
    return engine.sample_rate, silent


def _in_fresh_process(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in a new child process (fork where available: cheap, no re-imports)."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context(method)) as ex:
        return ex.submit(fn, *args).result()


def _tree_sha256(root: Path) -> str:
    """One digest over every file (relative path and content) under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(sha256_file(path).encode() + b"\0")
    return digest.hexdigest()


def _installation() -> dict[str, str]:
    """Where the espeak-ng in use lives and digests of its library and data files."""
    import espeakng_loader

    library = Path(espeakng_loader.get_library_path()).resolve()
    data = Path(espeakng_loader.get_data_path()).resolve()
    return {
        "version": espeak_version(),
        "library_path": str(library),
        "library_sha256": sha256_file(library),
        "data_path": str(data),
        "data_tree_sha256": _tree_sha256(data),
    }


# --------------------------------------------------------------------------- signal helpers


def _trim(wav: np.ndarray, threshold: float = 0.02, margin: int = 110) -> np.ndarray:
    """Drop espeak's leading/trailing silence (samples below ``threshold`` x peak)."""
    x = wav.astype(np.float32) / 32768.0
    loud = np.flatnonzero(np.abs(x) > threshold * max(float(np.abs(x).max()), 1e-9))
    if len(loud) == 0:
        return x
    return x[max(loud[0] - margin, 0) : loud[-1] + margin + 1]


def _coloured_noise(rng: np.random.Generator, colours: np.ndarray, length: int) -> np.ndarray:
    """Unit-RMS float32 noise rows; row i has power spectrum ~ 1/f**NOISE_EXPONENTS[colours[i]]."""
    white = rng.standard_normal((len(colours), length), dtype=np.float32)
    freqs = np.fft.rfftfreq(length).astype(np.float32)
    freqs[0] = freqs[1]  # avoid 1/0; the DC bin is zeroed below
    gains = freqs[None, :] ** (-np.asarray(NOISE_EXPONENTS, dtype=np.float32)[:, None] / 2)
    gains[:, 0] = 0.0
    noise = white.copy()
    for colour, gain in enumerate(gains):
        rows = np.flatnonzero(colours == colour)
        if NOISE_EXPONENTS[colour] != 0.0 and len(rows):
            noise[rows] = np.fft.irfft(np.fft.rfft(white[rows], axis=1) * gain, n=length, axis=1)
    return noise / np.sqrt(np.mean(noise**2, axis=1, keepdims=True))


def _resample(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Band-limited resampling of rows with torchaudio, single-threaded for bitwise repeatability."""
    import torch
    import torchaudio.functional as AF

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            return AF.resample(torch.from_numpy(x), orig, new).numpy()
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------- task


@TASKS.register("keywords")
class SpokenKeywords(Task):
    name = "keywords"
    domain = "audio"
    classes = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
    label_budgets = (50, 100)
    val_per_class = 10
    backbone = "cnn_small"
    backbone_args = {"in_chans": 1, "stem_stride": 2}
    augment = {
        "sample_rate": SAMPLE_RATE,
        "crop_seconds": CLIP_SECONDS,
        # 32 mels, 20 ms hop: a 32 x 51 input keeps the CNN cheap on a CPU
        "n_mels": 32,
        "n_fft": 512,
        "hop_length": 320,
        "max_shift_seconds": 0.1,
        "gain_db": (-6.0, 6.0),
        "speed": (0.85, 1.15),
        "noise_snr_db": (10.0, 40.0),
        "noise_exponent": (0.0, 2.0),
        "time_masks": 2,
        "time_mask_frames": 12,
        "freq_masks": 2,
        "freq_mask_bins": 6,
    }
    train = {"use_cat": True, "lr": 0.05}
    source = (
        "Synthesised offline with the espeak-ng speech synthesiser (library and voices "
        "from the espeakng-loader package; version in raw/espeak.json): each keyword spoken by one of 8 English accents x "
        f"{len(VARIANTS)} voice variants at random rate, pitch and pitch range, placed at a random "
        "offset in a 1 s window, mixed with white/pink/brown noise at 5-30 dB SNR, random gain, "
        "resampled 22,050 -> 16,000 Hz; speaker split: test voices use variants never heard in "
        "training; fixed seed"
    )

    # sizes and generation settings; class attributes so a subclass (or a test) can shrink them
    clips_per_class_train: int = 200
    num_train = clips_per_class_train * len(classes)
    clips_per_class_test: int = 50
    seed: int = 20240607
    test_variant_fraction: float = 0.25
    rate_wpm: tuple[int, int] = (120, 240)  # espeak default 175
    pitch: tuple[int, int] = (20, 80)  # espeak 0-100, default 50
    pitch_range: tuple[int, int] = (10, 90)  # espeak 0-100, default 50
    endings: tuple[str, ...] = ("", ".", "!", "?")  # punctuation changes the intonation
    snr_db: tuple[float, float] = (5.0, 30.0)
    peak_db: tuple[float, float] = (-20.0, -1.0)  # final peak level, dBFS

    # ------------------------------------------------------------------ fetch

    def fetch(self, raw_dir: Path) -> None:
        """Record (no download) the espeak-ng installation and check every voice speaks."""
        install = _installation()
        variants_dir = Path(install["data_path"]) / "voices" / "!v"
        missing = [v for v in VARIANTS if not (variants_dir / v).is_file()]
        if missing:
            raise EspeakError(
                f"espeak-ng voice variants missing in {variants_dir}: {missing}"
            )
        voices = [*ACCENTS, *(f"en+{v}" for v in VARIANTS)]
        sample_rate, silent = _in_fresh_process(_probe_voices, voices, "stop")
        if sample_rate != ESPEAK_RATE or silent:
            raise EspeakError(
                f"espeak-ng check failed: sample rate {sample_rate} (want {ESPEAK_RATE}), "
                f"silent voices {silent}"
            )
        raw_dir.mkdir(parents=True, exist_ok=True)
        info = {
            **install,
            "sample_rate": sample_rate,
            "accents": list(ACCENTS),
            "variants": list(VARIANTS),
        }
        atomic_write_json(raw_dir / "espeak.json", info)
        write_manifest(
            raw_dir, self.name, self.source, {"espeak.json": sha256_file(raw_dir / "espeak.json")}
        )

    # ------------------------------------------------------------------ prepare

    def prepare(self, raw_dir: Path, out_dir: Path) -> None:
        manifest = read_manifest(raw_dir)
        info = read_json(raw_dir / "espeak.json")
        current = _installation()
        for key in ("library_sha256", "data_tree_sha256"):
            if current[key] != info[key]:
                raise EspeakError(
                    f"the installed espeak-ng differs from the one fetch recorded ({key}); "
                    "run fetch again"
                )
        train_variants, test_variants = self.split_variants(info["variants"])
        accents = list(info["accents"])
        train_x, train_y = self._make_split("train", accents, train_variants)
        test_x, test_y = self._make_split("test", accents, test_variants)
        write_prepared(
            out_dir,
            task=self,
            train_x=train_x,
            train_y=train_y,
            test_x=test_x,
            test_y=test_y,
            raw_checksums=manifest["files"],
            extra={
                "sample_rate": SAMPLE_RATE,
                "espeak_version": info["version"],
                "accents": accents,
                "train_variants": train_variants,
                "test_variants": test_variants,
            },
        )

    def split_variants(self, variants: Sequence[str]) -> tuple[list[str], list[str]]:
        """Fixed disjoint train/test voice variants (the speaker split)."""
        ordered = sorted(variants)
        order = np.random.default_rng([self.seed, 0]).permutation(len(ordered))
        n_test = max(1, int(round(self.test_variant_fraction * len(ordered))))
        test = sorted(ordered[i] for i in order[:n_test])
        train = sorted(ordered[i] for i in order[n_test:])
        return train, test

    def _make_split(
        self, split: str, accents: Sequence[str], variants: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Synthesise and render one split; its own seed keeps it independent of the other."""
        per_class = self.clips_per_class_train if split == "train" else self.clips_per_class_test
        rng = np.random.default_rng([self.seed, 1 if split == "train" else 2])
        n = per_class * len(self.classes)
        labels = rng.permutation(np.repeat(np.arange(len(self.classes)), per_class))
        accent_ix = rng.integers(len(accents), size=n)
        variant_ix = rng.integers(len(variants), size=n)
        rates = rng.integers(self.rate_wpm[0], self.rate_wpm[1] + 1, size=n)
        pitches = rng.integers(self.pitch[0], self.pitch[1] + 1, size=n)
        ranges = rng.integers(self.pitch_range[0], self.pitch_range[1] + 1, size=n)
        endings = rng.integers(len(self.endings), size=n)
        seeds = rng.integers(1, 2**31 - 1, size=n)
        jobs: list[Job] = [
            (
                self.classes[labels[i]] + self.endings[endings[i]],
                f"{accents[accent_ix[i]]}+{variants[variant_ix[i]]}",
                int(rates[i]),
                int(pitches[i]),
                int(ranges[i]),
                int(seeds[i]),
            )
            for i in range(n)
        ]
        raw = _in_fresh_process(_synthesise_jobs, jobs, f"keywords {split}")
        return self._render(raw, rng), labels.astype(np.int64)

    def _render(self, raw: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        """Offset, resample, add noise and set the gain: int16 utterances -> [N, 16000] float32."""
        n = len(raw)
        window = int(round(CLIP_SECONDS * ESPEAK_RATE))
        length = int(round(CLIP_SECONDS * SAMPLE_RATE))
        placed = np.zeros((n, window), dtype=np.float32)
        spans = np.zeros((n, 2), dtype=np.int64)
        for i, wav in enumerate(raw):
            speech = _trim(wav)
            if len(speech) > window:  # too long for the window: keep a random 1 s of it
                start = int(rng.integers(len(speech) - window + 1))
                speech = speech[start : start + window]
            offset = int(rng.integers(window - len(speech) + 1))
            placed[i, offset : offset + len(speech)] = speech / max(np.abs(speech).max(), 1e-9)
            spans[i] = (offset, offset + len(speech))
        clean = _resample(placed, ESPEAK_RATE, SAMPLE_RATE)[:, :length]
        spans = np.clip(np.round(spans * SAMPLE_RATE / ESPEAK_RATE).astype(np.int64), 0, length)
        # speech power over the utterance only, so that the SNR means the same for short words
        power = np.full(n, 1e-12)
        for i, (a, b) in enumerate(spans):
            if b > a:
                power[i] = np.mean(np.square(clean[i, a:b], dtype=np.float64))
        colours = rng.integers(len(NOISE_COLOURS), size=n)
        snr = rng.uniform(*self.snr_db, size=n)
        noise = _coloured_noise(rng, colours, length)
        mix = clean + noise * np.sqrt(power / 10.0 ** (snr / 10.0)).astype(np.float32)[:, None]
        peak = 10.0 ** (rng.uniform(*self.peak_db, size=n) / 20.0)
        mix *= (peak / np.maximum(np.abs(mix).max(axis=1), 1e-12)).astype(np.float32)[:, None]
        return np.clip(mix, -1.0, 1.0).astype(np.float32)


__all__ = ["ACCENTS", "VARIANTS", "SpokenKeywords", "espeak_version"]
