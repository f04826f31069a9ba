"""The device side of a run: which device, which autocast dtype, which memory format, and
whether a model's outputs depend on its batch (batch norm)."""

from __future__ import annotations

import torch

from semibench.errors import SemiBenchError


class DeviceUnavailableError(SemiBenchError, RuntimeError):
    """The config asks for a device this machine does not have."""


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError("train.device=cuda, but this machine has no usable CUDA "
                                     "device (set train.device: auto or cpu)")
    return torch.device(name)


def memory_format(setting: str, model: torch.nn.Module) -> torch.memory_format:
    """``train.memory_format`` for this model: channels-last only helps convolutions."""
    if setting == "channels_last" or (setting == "auto" and getattr(model, "channels_last", False)):
        return torch.channels_last
    if setting in ("auto", "contiguous"):
        return torch.contiguous_format
    raise ValueError(f"train.memory_format={setting!r}: allowed values: auto, channels_last, "
                     "contiguous")


def has_batch_norm(model: torch.nn.Module) -> bool:
    """Whether a sample's output depends on the rest of its batch in training mode."""
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def precision_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.amp`` on ``device`` (None: float32). The CPU always
    trains in float32 (documented); a GPU without bfloat16 is one line, before anything runs."""
    if device.type != "cuda" or amp == "none":
        return None
    if amp == "bf16":
        if not torch.cuda.is_bf16_supported():
            raise DeviceUnavailableError(
                f"train.amp=bf16, but {torch.cuda.get_device_name(device)} has no bfloat16 "
                "support (set train.amp: fp16 or none)")
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    raise DeviceUnavailableError(f"train.amp={amp!r}: allowed values: none, bf16, fp16")
