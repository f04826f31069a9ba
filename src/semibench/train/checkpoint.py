"""Checkpoints: written atomically, read with ``weights_only=True`` (no pickle of code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from semibench.io import atomic_path


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)
