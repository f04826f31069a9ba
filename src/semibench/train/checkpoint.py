"""Checkpoints that a crash, a full disk or a bad sector cannot turn into a wrong result.

Every checkpoint is written atomically (a temporary file, fsync'd, then renamed), read with
``weights_only=True`` (no pickle of code), and carries a SHA-256 recorded next to it in a small
JSON file written after the rename. Two generations are kept (``checkpoint.pt`` and
``checkpoint.prev.pt``): if the newest is truncated, empty or corrupt (its SHA-256 differs from
the record, or torch cannot read it), the run continues from the previous one, saying so; if
neither is usable it starts afresh, saying so. Nobody has to delete a file by hand.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from semibench.io import (
    atomic_path,
    atomic_write_json,
    no_space_message,
    read_json,
    sha256_file,
)


class _HashingWriter(io.RawIOBase):
    """A write-only file object that hashes what passes through it (no second read)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        return self.handle.write(view)

    def flush(self) -> None:
        self.handle.flush()


def _is_no_space(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    cause = err.__cause__ or err.__context__
    return cause is not None and cause is not err and _is_no_space(cause)


def write_torch(path: Path, obj: Any) -> str:
    """``torch.save`` into an open file at ``path``; return its SHA-256.

    Writing through a Python file object keeps the operating system's error (e.g. ENOSPC),
    which torch's own file writer turns into an opaque ``enforce fail``.
    """
    try:
        with open(path, "wb") as handle:
            writer = _HashingWriter(handle)
            torch.save(obj, writer)
            handle.flush()
    except (OSError, RuntimeError) as err:
        if _is_no_space(err) or "No space left" in str(err):
            raise OSError(errno.ENOSPC, no_space_message(path), str(path)) from err
        raise
    return writer.digest.hexdigest()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> str:
    """Write ``state`` atomically to ``path``; return its SHA-256."""
    with atomic_path(path) as tmp:
        return write_torch(tmp, state)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


@dataclass
class Loaded:
    """A verified checkpoint: its state and which generation it came from."""

    state: dict[str, Any]
    path: Path


class CheckpointStore:
    """The two checkpoint generations of one run directory, with their SHA-256 records."""

    def __init__(self, directory: Path, name: str = "checkpoint") -> None:
        self.directory = Path(directory)
        self.current = self.directory / f"{name}.pt"
        self.previous = self.directory / f"{name}.prev.pt"

    @staticmethod
    def record(path: Path) -> Path:
        return path.with_suffix(".json")

    def save(self, state: dict[str, Any]) -> None:
        """New generation: the old current becomes previous, then the new one is current."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.current) as tmp:
            digest = write_torch(tmp, state)
            if self.current.exists():
                self.record(self.previous).unlink(missing_ok=True)
                os.replace(self.current, self.previous)
                if self.record(self.current).exists():
                    os.replace(self.record(self.current), self.record(self.previous))
        atomic_write_json(self.record(self.current), {
            "file": self.current.name, "sha256": digest,
            "next_iteration": state.get("next_iteration"),
        })

    def _verified(self, path: Path) -> tuple[dict[str, Any] | None, str]:
        """The state in ``path`` and "" if it is sound, else None and why not."""
        if not path.exists():
            return None, "missing"
        if path.stat().st_size == 0:
            return None, "empty"
        record = self.record(path)
        if record.exists():
            try:
                expected = read_json(record)["sha256"]
            except (OSError, ValueError, KeyError, TypeError):
                expected = None
            if expected is not None and sha256_file(path) != expected:
                return None, "SHA-256 differs from its record: truncated or corrupt"
        try:
            state = load_checkpoint(path)
        except Exception as err:  # noqa: BLE001 - any unreadable file is the same fault
            return None, f"unreadable ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
        if not isinstance(state, dict) or "next_iteration" not in state:
            return None, "not a SemiBench checkpoint"
        return state, ""

    def load(self, log: Any) -> Loaded | None:
        """The newest sound generation, or None. ``log`` receives one line per fault."""
        for path in (self.current, self.previous):
            state, why = self._verified(path)
            if state is not None:
                return Loaded(state, path)
            if why != "missing":
                log(f"{path} is {why}; ignoring it")
        return None

    def clear(self) -> None:
        """Remove every generation and record (the run starts afresh or has finished)."""
        for path in (self.current, self.previous):
            path.unlink(missing_ok=True)
            self.record(path).unlink(missing_ok=True)
