"""Helpers shared by the views of every domain: ``ViewFn``, host-side draws, transfers without
a host sync and per-device constants.

Where views run: on the device of their input (the CPU, or an accelerator holding the stored
pools), with a generator on the CPU. Every random number is drawn on the host, and every
decision that selects samples (which RandAugment op a sample gets, which clips are sped up) is
taken there, from those draws; the data side only receives index and parameter tensors
(:func:`to_device`), so a view never waits for the device (no ``.item()``, ``.nonzero()``,
boolean-mask indexing or Python branch on device values). Decisions that depend on the data
itself (a clip's non-silent length, a text's real tokens) stay on the device as masks. Views
hold no mutable state apart from :class:`PerDevice` caches, so the training thread and a
prefetch thread may call them at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import torch

ViewFn = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
T = TypeVar("T")


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` (host-side draws, indices or constants) on ``device``, without a host sync.

    A plain host-to-device copy blocks until the device's stream has caught up, so CUDA copies
    go from pinned memory with ``non_blocking`` (the caching host allocator keeps the pinned
    block alive until the copy has run). On ``t``'s own device this returns ``t`` itself: treat
    the result as read-only."""
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def host_rand(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Uniform draws from ``generator`` on the host (the trainer passes a CPU generator; a CUDA
    one would cost a device-to-host copy here)."""
    return torch.rand(shape, generator=generator, device=generator.device).cpu()


class PerDevice(Generic[T]):
    """Read-only values built once per device (and extra key ``args``) by
    ``build(device, *args)``, e.g. constants moved to the device.

    The key includes the current CUDA stream, so a stream never reads a constant whose copy
    another stream may not have finished; the lock makes first uses from two threads at once
    build one value."""

    def __init__(self, build: Callable[..., T]) -> None:
        self._build = build
        self._values: dict[tuple[Any, ...], T] = {}
        self._lock = threading.Lock()

    def get(self, device: torch.device, *args: Any) -> T:
        stream = torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0
        key = (device, stream, *args)
        value = self._values.get(key)
        if value is None:
            with self._lock:
                value = self._values.get(key)
                if value is None:
                    value = self._build(device, *args)
                    self._values[key] = value
        return value


_CONSTANTS: PerDevice[torch.Tensor] = PerDevice(
    lambda device, values, dtype, shape: to_device(
        torch.tensor(values, dtype=dtype).view(shape), device
    )
)


def constant(
    device: torch.device, values: tuple[float, ...], dtype: torch.dtype, shape: tuple[int, ...]
) -> torch.Tensor:
    """A read-only tensor of ``values`` on ``device``, moved there once (per stream) and cached;
    keyed by plain values, so the objects that use it stay picklable."""
    return _CONSTANTS.get(device, values, dtype, shape)


def to_device_all(tensors: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """Host tensors of one dtype on ``device`` in one transfer (views of one packed tensor);
    on their own device, the tensors themselves."""
    if all(t.device == device for t in tensors):
        return tensors
    moved = to_device(torch.cat([t.reshape(-1) for t in tensors]), device)
    out, start = [], 0
    for t in tensors:
        out.append(moved.narrow(0, start, t.numel()).view(t.shape))
        start += t.numel()
    return out
