"""Weak and strong views for every domain, applied to whole batches.

``build_views(domain, spec)`` returns a dict ``view name -> ViewFn``. A ``ViewFn`` maps a batch
of stored inputs to model inputs, drawing its randomness from the ``torch.Generator`` it is
given (so a run is reproducible per seed and resumable exactly):

* ``"eval"``: deterministic preprocessing only (normalisation, centre crop, features).
* ``"weak"``: the domain's weak augmentation.
* ``"strong"``: the domain's strong augmentation.

Stored input formats (what the trainer feeds in) and model inputs (what comes out):

* image: uint8 ``[B, C, H, W]`` -> float32 normalised ``[B, C, H, W]``.
* text: int64 token ids ``[B, L]`` (``pad_id`` padding, ``cls_id`` first) -> int64 ``[B, L]``;
  or ``[B, K, L]`` (the original and K-1 back-translations) -> ``[B, L]``.
* audio: float32 waveforms ``[B, T]`` at ``sample_rate`` -> float32 log-mel
  ``[B, 1, n_mels, frames]`` (``features="logmel"``) or normalised waveforms ``[B, T_crop]``
  (``features="waveform"``, for HuBERT / wav2vec2).

Algorithms ask for views by name; no module here knows about algorithms.

Where views run and the helpers that keep a view free of host syncs: ``semibench.augment.base``.
"""

from __future__ import annotations

from typing import Any

from semibench.augment.base import (
    PerDevice,
    ViewFn,
    constant,
    host_rand,
    to_device,
    to_device_all,
)

__all__ = [
    "PerDevice",
    "ViewFn",
    "build_views",
    "constant",
    "host_rand",
    "to_device",
    "to_device_all",
]


def build_views(domain: str, spec: dict[str, Any]) -> dict[str, ViewFn]:
    """Return the ``eval``/``weak``/``strong`` view functions of ``domain`` built from ``spec``."""
    if domain == "image":
        from semibench.augment.image import build_image_views

        return build_image_views(**spec)
    if domain == "text":
        from semibench.augment.text import build_text_views

        return build_text_views(**spec)
    if domain == "audio":
        from semibench.augment.audio import build_audio_views

        return build_audio_views(**spec)
    raise ValueError(f"unknown domain {domain!r}; allowed: audio, image, text")
