"""SemiBench: a unified, reproducible semi-supervised learning benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from semibench.inference import LoadedRun

__version__ = "0.1.0"


def load_run(path: str | Path, checkpoint: str = "best", device: str = "cpu") -> LoadedRun:
    """A finished run's model (eval mode), its preprocessing and class names, ready for
    inference (see :class:`semibench.inference.LoadedRun`). Imported lazily: ``import
    semibench`` stays free of torch."""
    from semibench.inference import load_run as _load_run

    return _load_run(path, checkpoint=checkpoint, device=device)
