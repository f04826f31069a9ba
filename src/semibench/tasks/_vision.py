"""Shared pieces of the vision tasks: USB's and TorchSSL's trainer settings, checksummed
downloads recorded in the raw manifest, archive readers that turn a truncated or corrupt file
into one clear error, and image decoding.

Every reader here runs only on files that ``read_manifest`` has just re-verified, so nothing is
parsed before its checksum matched what ``fetch`` pinned.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import IO, Any, TypeVar

import numpy as np

from semibench.archive import CorruptArchiveError
from semibench.tasks._sources import SourceDataError

T = TypeVar("T")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: USB's CV protocol (config/usb_cv): 200 "epochs" of 1,024 iterations, AdamW with a cosine
#: schedule after 5,120 warm-up steps, batch 8 + 8 unlabelled, evaluation every 2,048 steps,
#: no EMA (ema_m 0; the algorithms that need a teacher set their own).
USB_CV_TRAIN: dict[str, Any] = {
    "iterations": 204_800,
    "eval_every": 2048,
    "batch_size": 8,
    "uratio": 1,
    "eval_batch_size": 16,
    "optimizer": "adamw",
    "weight_decay": 5e-4,
    "warmup_iterations": 5120,
    "ema_m": 0.0,
    "use_cat": True,
}

#: TorchSSL-style classic CV (config/classic_cv): WRNs from scratch, SGD + Nesterov 0.03,
#: cosine without warm-up, 2**20 iterations, batch 64 (uratio 7 for the FixMatch family,
#: 1 for MixMatch, ReMixMatch, MeanTeacher, Pi-Model, PseudoLabel and VAT), EMA 0.999.
CLASSIC_CV_TRAIN: dict[str, Any] = {
    "iterations": 1_048_576,
    "eval_every": 5120,
    "batch_size": 64,
    "uratio": 7,
    "eval_batch_size": 256,
    "optimizer": "sgd",
    "lr": 0.03,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "layer_decay": 1.0,
    "warmup_iterations": 0,
    "ema_m": 0.999,
    "use_cat": True,
}


def usb_cv_train(lr: float, layer_decay: float = 1.0) -> dict[str, Any]:
    """USB's CV trainer settings with a task's learning rate and layer-wise decay."""
    return {**USB_CV_TRAIN, "lr": lr, "layer_decay": layer_decay}




# --------------------------------------------------------------------------- archives

def read_exact(handle: IO[bytes], size: int, what: str) -> np.ndarray:
    """Read exactly ``size`` bytes into a new uint8 array (no intermediate bytes object)."""
    out = np.empty(size, dtype=np.uint8)
    view = memoryview(out)
    got = 0
    while got < size:
        n = handle.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    if got != size:
        raise CorruptArchiveError(f"{what}: expected {size} bytes, read {got} (truncated)")
    return out


# --------------------------------------------------------------------------- images


def decode_rgb(data: bytes, what: str) -> np.ndarray:
    """Decode an encoded image (JPEG, PNG, ...) to uint8 RGB ``[H, W, 3]``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise CorruptArchiveError(f"{what}: not a readable image ({err})") from err


def hwc_to_chw(images: np.ndarray) -> np.ndarray:
    """``[N, H, W, C]`` -> contiguous ``[N, C, H, W]``."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def check_classes(found: Sequence[str], expected: Sequence[str], what: str) -> None:
    """The source's class names must be the task's, in order (labels are indices into them)."""
    if list(found) != list(expected):
        raise SourceDataError(f"{what}: class names {list(found)} differ from the expected "
                         f"{list(expected)}")
