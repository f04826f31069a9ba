"""Back-translation of a task's training texts: USB's strong text view, computed once per task.

Every prepared training text is translated en->de->en and en->ru->en with MarianMT
(Helsinki-NLP ``opus-mt-en-de``/``opus-mt-de-en``, ``opus-mt-en-ru``/``opus-mt-ru-en``), sampling
with temperature 0.9 from the full distribution (no top-k/top-p, no beams), as USB's
preprocessing does. Like USB, the input is the text's last ``max_chars`` (1,024) characters.

Output (``data/backtranslated/<task>/``, no pickle):

* ``backtranslations.npz``: ``texts`` ``[N, 1 + L]`` strings aligned with the prepared
  ``train_x`` (column 0 the original, then ``bt_de``, ``bt_ru``), ``columns``, ``method``,
  ``source_data_sha256`` (the prepared data it was made from) and ``key`` (the settings).
* ``info.json``: method, models, settings, sizes, device and wall time, for the report.

When the models are unavailable and the user asked for ``fallback="token-edit"``, the outputs
are written with ``method = "token-edit-fallback"``, ``texts`` ``[N, 1]`` (the originals) and the
reason: training then uses the token-edit stand-in of ``semibench.augment.text``, and the
report can say so. Without the fallback a missing model is an error naming what to download.

Deviations from USB (documented): USB used fairseq's WMT19 transformer ensembles; MarianMT
(OPUS-MT) models are much smaller and run anywhere ``transformers`` does, so paraphrases differ
in quality. USB retried a failed batch after dropping 100 words of its longest text; here inputs
are cut to ``max_input_tokens`` and a batch that runs out of GPU memory is split in half.

Work is saved in chunks (``chunks/``, removed at the end) with per-chunk seeds, so a killed run
resumes where it stopped and gives the same result as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semibench.errors import SemiBenchError
from semibench.io import atomic_path, atomic_write_json, read_json
from semibench.tasks.base import Prepared, load_prepared

logger = logging.getLogger(__name__)

#: language -> (en->xx model, xx->en model)
MODELS: dict[str, tuple[str, str]] = {
    "de": ("Helsinki-NLP/opus-mt-en-de", "Helsinki-NLP/opus-mt-de-en"),
    "ru": ("Helsinki-NLP/opus-mt-en-ru", "Helsinki-NLP/opus-mt-ru-en"),
}
OUTPUT_NAME = "backtranslations.npz"
INFO_NAME = "info.json"
METHOD_MARIAN = "marianmt"
METHOD_FALLBACK = "token-edit-fallback"
FALLBACKS = ("none", "token-edit")
_OFFLINE_VALUES = ("1", "true", "yes", "on")


class ModelsUnavailableError(SemiBenchError, RuntimeError):
    """A translation model (or what loading it needs) is not available here."""


class BacktranslationError(SemiBenchError, ValueError):
    """Bad back-translation settings, or a table that does not belong to the prepared data."""


@dataclass(frozen=True)
class Settings:
    """What determines the translations (all of it is part of the cache key)."""

    languages: tuple[str, ...] = ("de", "ru")
    #: USB samples with temperature 0.9
    temperature: float = 0.9
    #: USB translates the last 1,024 characters of a text ("tail"); "head" keeps the first
    max_chars: int = 1024
    keep: str = "tail"
    max_input_tokens: int = 512
    max_new_tokens: int = 512
    batch_size: int = 32
    #: texts per saved chunk (the unit of resumption)
    chunk_size: int = 2048
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.languages) - set(MODELS))
        if unknown or not self.languages:
            raise BacktranslationError(f"languages {list(self.languages)}: allowed: {', '.join(MODELS)}")
        if self.keep not in ("head", "tail"):
            raise BacktranslationError(f"keep={self.keep!r}: allowed: head, tail")
        for name in ("max_chars", "max_input_tokens", "max_new_tokens", "batch_size",
                     "chunk_size"):
            if getattr(self, name) < 1:
                raise BacktranslationError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.temperature > 0:
            raise BacktranslationError(f"temperature must be > 0, got {self.temperature}")

    def key(self, source_sha256: str) -> str:
        """A fingerprint of the settings, the models and the source data."""
        payload = {"settings": dataclasses.asdict(self), "source": source_sha256,
                   "models": {lang: MODELS[lang] for lang in self.languages}}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (stable across processes, unlike ``hash``)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def source_text(text: str, settings: Settings) -> str:
    """The part of a text that is translated (USB: its last ``max_chars`` characters)."""
    if len(text) <= settings.max_chars:
        return text
    return text[-settings.max_chars:] if settings.keep == "tail" else text[: settings.max_chars]


# --------------------------------------------------------------------------- models


def is_offline(offline: bool = False) -> bool:
    return offline or any(os.environ.get(v, "").lower() in _OFFLINE_VALUES
                          for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@dataclass
class Translator:
    """One MarianMT direction: a seq2seq model and its tokenizer on a device."""

    name: str
    model: Any
    tokenizer: Any
    device: torch.device
    progress: Any = field(default=None, repr=False)

    @torch.inference_mode()
    def _generate(self, texts: list[str], settings: Settings) -> list[str]:
        # never past the model's position table (512 for OPUS-MT)
        positions = getattr(self.model.config, "max_position_embeddings", None) or 1 << 30
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                             max_length=min(settings.max_input_tokens, positions))
        out = self.model.generate(
            input_ids=enc["input_ids"].to(self.device),
            attention_mask=enc["attention_mask"].to(self.device),
            do_sample=True,
            temperature=settings.temperature,
            top_k=0,
            top_p=1.0,
            num_beams=1,
            max_new_tokens=min(settings.max_new_tokens, positions - 1),
        )
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    def translate(self, texts: Sequence[str], settings: Settings, seed: int) -> list[str]:
        """Translate ``texts`` in batches (longest first); empty texts stay empty."""
        out = [""] * len(texts)
        todo = sorted((i for i, t in enumerate(texts) if t.strip()), key=lambda i: -len(texts[i]))
        if self.progress is not None:
            self.progress.update(len(texts) - len(todo))
        batch_size, pos = settings.batch_size, 0
        while pos < len(todo):
            idx = todo[pos: pos + batch_size]
            torch.manual_seed(derive_seed(seed, pos))
            try:
                decoded = self._generate([texts[i] for i in idx], settings)
            except torch.cuda.OutOfMemoryError:
                if batch_size == 1:
                    raise
                torch.cuda.empty_cache()
                batch_size //= 2
                logger.warning("%s: out of GPU memory, batch size now %d", self.name, batch_size)
                continue
            for i, text in zip(idx, decoded, strict=True):
                out[i] = text
            pos += len(idx)
            if self.progress is not None:
                self.progress.update(len(idx))
        return out


def load_translator(
    name: str,
    *,
    weights_dir: Path | None = None,
    cache_dir: Path | None = None,
    offline: bool = False,
    device: torch.device | str = "cpu",
) -> Translator:
    """Load ``name`` from ``weights_dir/<name>`` or else from the Hugging Face hub cache
    (``local_files_only`` when offline). Raises ``ModelsUnavailableError`` saying what to get."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    if weights_dir is not None:
        source: str | Path = Path(weights_dir) / name
        kwargs: dict[str, Any] = {"local_files_only": True}
        if not (Path(source) / "config.json").is_file():
            raise ModelsUnavailableError(
                f"{name}: no model in {source} (no config.json); download it with "
                f"`hf download {name} --local-dir {source}`"
            )
        where = str(source)
    else:
        from huggingface_hub import constants

        source = name
        kwargs = {"local_files_only": is_offline(offline), "cache_dir": cache_dir}
        where = f"the Hugging Face cache {cache_dir or constants.HF_HUB_CACHE}"
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForSeq2SeqLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError, ImportError) as err:
        hint = ("; MarianMT's tokenizer needs the `sentencepiece` package"
                if "sentencepiece" in str(err).lower() else "")
        raise ModelsUnavailableError(
            f"{name}: cannot load it from {where} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}){hint}; download it with "
            f"`hf download {name}` (hub cache) or `hf download {name} --local-dir "
            f"<weights_dir>/{name}` and pass --weights-dir <weights_dir>"
        ) from err
    device = torch.device(device)
    model.to(device).eval()
    return Translator(name, model, tokenizer, device)


def load_translators(settings: Settings, **kwargs: Any) -> dict[str, tuple[Translator, Translator]]:
    """Both directions of every language; all missing models are reported at once."""
    loaded: dict[str, Translator] = {}
    missing: list[str] = []
    for lang in settings.languages:
        for name in MODELS[lang]:
            try:
                loaded[name] = load_translator(name, **kwargs)
            except ModelsUnavailableError as err:
                missing.append(str(err))
    if missing:
        raise ModelsUnavailableError("translation models unavailable:\n  " + "\n  ".join(missing))
    return {lang: (loaded[MODELS[lang][0]], loaded[MODELS[lang][1]])
            for lang in settings.languages}


# --------------------------------------------------------------------------- translation


def _chunk_path(chunk_dir: Path, lang: str, start: int) -> Path:
    return chunk_dir / f"{lang}-{start:010d}.npz"


def _load_chunk(path: Path, key: str, size: int) -> list[str] | None:
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as chunk:
        if str(chunk["key"]) != key or len(chunk["texts"]) != size:
            return None
        return chunk["texts"].tolist()


def _save_chunk(path: Path, key: str, texts: list[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, texts=np.array(texts, dtype=np.str_), key=np.array(key))


def backtranslate_texts(
    texts: Sequence[str],
    translators: dict[str, tuple[Translator, Translator]],
    settings: Settings,
    *,
    chunk_dir: Path | None = None,
    key: str = "",
) -> dict[str, np.ndarray]:
    """Back-translations of ``texts`` per language (``[N]`` strings, aligned with ``texts``).

    Chunks are saved under ``chunk_dir`` (when given) and reused if their ``key`` matches;
    every chunk and direction has its own seed, so resuming gives the same result."""
    from tqdm.auto import tqdm

    sources = [source_text(str(t), settings) for t in texts]
    out: dict[str, np.ndarray] = {}
    for lang in settings.languages:
        forward, backward = translators[lang]
        result: list[str] = []
        with tqdm(total=2 * len(sources), desc=f"en-{lang}-en", unit="text",
                  file=sys.stderr) as bar:
            forward.progress = backward.progress = bar
            for start in range(0, len(sources), settings.chunk_size):
                part = sources[start: start + settings.chunk_size]
                path = _chunk_path(chunk_dir, lang, start) if chunk_dir else None
                cached = _load_chunk(path, key, len(part)) if path else None
                if cached is None:
                    middle = forward.translate(part, settings, derive_seed(settings.seed, lang,
                                                                           "to", start))
                    cached = backward.translate(middle, settings,
                                                derive_seed(settings.seed, lang, "back", start))
                    if path:
                        _save_chunk(path, key, cached)
                else:
                    bar.update(2 * len(part))
                result.extend(cached)
            forward.progress = backward.progress = None
        out[lang] = np.array(result, dtype=np.str_).reshape(len(result))
    return out


# --------------------------------------------------------------------------- per task


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("torch", "transformers"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _write(out_dir: Path, table: np.ndarray, columns: list[str], info: dict[str, Any]) -> None:
    """The npz first, then info.json: a complete info.json means a complete output."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / INFO_NAME).unlink(missing_ok=True)
    with atomic_path(out_dir / OUTPUT_NAME) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, texts=table, columns=np.array(columns, dtype=np.str_),
                 method=np.array(info["method"]), key=np.array(info["key"]),
                 source_data_sha256=np.array(info["source_data_sha256"]))
    atomic_write_json(out_dir / INFO_NAME, info)


def backtranslate_task(
    prepared_dir: str | Path,
    out_dir: str | Path,
    *,
    task: str | None = None,
    settings: Settings | None = None,
    weights_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    offline: bool = False,
    device: str = "auto",
    fallback: str = "none",
) -> dict[str, Any]:
    """Back-translate a prepared task's training texts into ``out_dir``; return its info.

    An output made from the same prepared data with the same settings is reused. With
    ``fallback="token-edit"``, unavailable models give the explicit fallback output instead
    of an error."""
    if fallback not in FALLBACKS:
        raise BacktranslationError(f"fallback={fallback!r}: allowed: {', '.join(FALLBACKS)}")
    settings = settings or Settings()
    prepared_dir, out_dir = Path(prepared_dir), Path(out_dir)
    data = load_prepared(prepared_dir)
    texts = data.train_x
    if data.meta.get("domain") != "text" or texts.ndim != 1:
        raise BacktranslationError(f"{prepared_dir}: back-translation needs text train_x [N], got "
                         f"domain {data.meta.get('domain')!r} and shape {texts.shape}")
    source_sha = data.meta["data_sha256"]
    key = settings.key(source_sha)
    info: dict[str, Any] = {
        "task": task or data.meta.get("name"),
        "source_data_sha256": source_sha,
        "key": key,
        "num_texts": len(texts),
        "settings": dataclasses.asdict(settings),
        "models": {lang: list(MODELS[lang]) for lang in settings.languages},
        "versions": _versions(),
    }
    previous = out_dir / INFO_NAME
    if previous.is_file() and (out_dir / OUTPUT_NAME).is_file():
        old = read_json(previous)
        if old.get("key") == key and old.get("method") == METHOD_MARIAN:
            logger.info("%s: up to date, nothing to translate", out_dir / OUTPUT_NAME)
            return old

    started = time.time()
    torch_device = pick_device(device)
    try:
        translators = load_translators(
            settings,
            weights_dir=Path(weights_dir) if weights_dir else None,
            cache_dir=Path(cache_dir) if cache_dir else None,
            offline=offline,
            device=torch_device,
        )
    except ModelsUnavailableError as err:
        if fallback != "token-edit":
            raise
        logger.warning("WARNING: %s\nwriting the token-edit fallback marker: the strong text "
                       "view will be the token-edit stand-in, not back-translation", err)
        info.update(method=METHOD_FALLBACK, fallback=True, reason=str(err), columns=["original"],
                    device=None, wall_time_s=time.time() - started)
        _write(out_dir, texts.reshape(-1, 1), ["original"], info)
        return info

    chunk_dir = out_dir / "chunks"
    results = backtranslate_texts(texts.tolist(), translators, settings, chunk_dir=chunk_dir,
                                  key=key)
    columns = ["original"] + [f"bt_{lang}" for lang in settings.languages]
    table = np.stack([texts] + [results[lang] for lang in settings.languages], axis=1)
    info.update(method=METHOD_MARIAN, fallback=False, reason=None, columns=columns,
                device=str(torch_device), wall_time_s=time.time() - started)
    _write(out_dir, table, columns, info)
    shutil.rmtree(chunk_dir, ignore_errors=True)
    return info


def attach_backtranslations(data: Prepared, path: str | Path) -> Prepared:
    """``data`` with ``train_x`` replaced by the ``[N, 1 + L]`` back-translation table (the
    text views then use it), or unchanged for the token-edit fallback. Refuses a table made
    from other prepared data."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as bt:
        method, table = str(bt["method"]), bt["texts"]
        source = str(bt["source_data_sha256"])
    if source != data.meta.get("data_sha256"):
        raise BacktranslationError(f"{path} was made from other prepared data (sha256 {source[:12]}..., "
                         f"now {str(data.meta.get('data_sha256'))[:12]}...); run "
                         "`semibench backtranslate` again")
    if table.ndim != 2 or len(table) != len(data.train_x) or not np.array_equal(
        table[:, 0], data.train_x
    ):
        raise BacktranslationError(f"{path}: its first column is not the prepared train_x")
    if method == METHOD_FALLBACK or table.shape[1] == 1:
        return data
    return dataclasses.replace(data, train_x=table)
