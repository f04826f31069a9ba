"""Wall-clock timing that waits for the device."""

from __future__ import annotations

import time

import torch


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Phases:
    """Wall-clock seconds of consecutive phases, synchronising the device at each mark."""

    def __init__(self, device: str):
        self.device = device
        self.times: dict[str, float] = {}
        sync(device)
        self.last = time.perf_counter()

    def mark(self, name: str) -> None:
        sync(self.device)
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + now - self.last
        self.last = now
