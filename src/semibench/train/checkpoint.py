"""Checkpoints that a crash, a full disk or a bad sector cannot turn into a wrong result.

Every checkpoint is written atomically (a temporary file, fsync'd, then renamed), read with
``weights_only=True`` (no pickle of code), and is resumed only when its bytes are verified:
its SHA-256 is in a small JSON record (``checkpoint.json``) that is written *before* the file
is renamed into place. Two generations are kept (``checkpoint.pt`` and ``checkpoint.prev.pt``,
with ``checkpoint.json`` and ``checkpoint.prev.json``); the files and their records move in
an order that keeps every checkpoint on disk covered by one of the two records at every
instant, so a kill at any point leaves nothing unverifiable behind.

A generation whose SHA-256 is in no readable record (a flipped bit, a truncated copy, a record
deleted or damaged), which is empty, or which torch cannot read is never resumed: the run
continues from the previous generation, or starts afresh, and says why in ``history.log``.
torch itself does not check the bytes of a tensor: a checkpoint with flipped bytes inside a
weight loads without complaint, so the record is the only line of defence. Nobody has to
delete a file by hand.

The record also says how far the run got (``next_iteration`` of ``iterations``, ``elapsed_s``):
``semibench status`` reads it instead of the checkpoint itself.
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


def _fsync(path: Path) -> None:
    """The file's data on the disk before its record says it exists."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


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
        #: the SHA-256 of each checkpoint on disk whose bytes were verified against a record
        #: (by :meth:`load`, or once by the first :meth:`save`) or written by this store:
        #: only these are kept as a fallback generation
        self._known: dict[Path, str] | None = None

    @staticmethod
    def record(path: Path) -> Path:
        return path.with_suffix(".json")

    def save(self, state: dict[str, Any]) -> None:
        """New generation: the verified current one becomes the previous, then the new one is
        current.

        The order keeps every checkpoint on disk covered by a record: (1) the new state goes
        to a temporary file (fsync'd) and its SHA-256 is known; (2) ``checkpoint.pt``, if
        verified, becomes ``checkpoint.prev.pt`` (still covered by ``checkpoint.json``; an
        unverifiable one is deleted instead, never kept as the fallback); (3) the previous
        generation's record is put in place (``checkpoint.json`` moved, or written); (4) the
        new record is written; (5) the temporary file is renamed to ``checkpoint.pt``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        known = self._verified_on_disk()
        with atomic_path(self.current) as tmp:
            digest = write_torch(tmp, state)
            _fsync(tmp)
            if self.current in known:
                os.replace(self.current, self.previous)
                known[self.previous] = known.pop(self.current)
            else:
                self.current.unlink(missing_ok=True)
            if self.previous in known:
                self._cover_previous(known[self.previous])
            config = state.get("config") if isinstance(state.get("config"), dict) else {}
            atomic_write_json(self.record(self.current), {
                "file": self.current.name, "sha256": digest,
                "next_iteration": state.get("next_iteration"),
                "iterations": (config.get("train") or {}).get("iterations"),
                "elapsed_s": state.get("elapsed_s"),
            })
        known[self.current] = digest

    def _cover_previous(self, digest: str) -> None:
        """Make ``checkpoint.prev.json`` the record of the previous generation (SHA-256
        ``digest``): the current record moved there when it describes it, else a new one."""
        current, previous = self.record(self.current), self.record(self.previous)
        if _record_digest(current) == digest:
            os.replace(current, previous)
        elif _record_digest(previous) != digest:
            atomic_write_json(previous, {"file": self.previous.name, "sha256": digest})

    def _verified_on_disk(self) -> dict[Path, str]:
        """:attr:`_known`, hashing the checkpoints on disk once when :meth:`load` did not."""
        if self._known is None:
            digests, _ = self._records()
            self._known = {}
            for path in (self.current, self.previous):
                if path.is_file() and path.stat().st_size:
                    actual = sha256_file(path)
                    if actual in digests.values():
                        self._known[path] = actual
        return self._known

    def _records(self) -> tuple[dict[Path, str], dict[Path, str]]:
        """The SHA-256 of each readable record, and why each other record is not usable."""
        digests: dict[Path, str] = {}
        faults: dict[Path, str] = {}
        for path in (self.current, self.previous):
            record = self.record(path)
            if not record.exists():
                faults[record] = "missing"
                continue
            try:
                digest = read_json(record)["sha256"]
                if not isinstance(digest, str) or len(digest) != 64:
                    raise ValueError("no SHA-256 in it")
            except (OSError, ValueError, KeyError, TypeError) as err:
                faults[record] = f"unreadable ({type(err).__name__})"
                continue
            digests[record] = digest
        return digests, faults

    def _verified(self, path: Path, digests: dict[Path, str],
                  faults: dict[Path, str]) -> tuple[dict[str, Any] | None, str, str]:
        """The state in ``path``, "" and its SHA-256 if its bytes are verified and it loads,
        else None, why not and "". Verified: its SHA-256 is in a readable record (its own,
        or the other one during the moment of a save when the files and records move)."""
        if not path.exists():
            return None, "missing", ""
        if path.stat().st_size == 0:
            return None, "empty", ""
        own = self.record(path)
        actual = sha256_file(path)
        if actual not in digests.values():
            if own in digests:
                return None, (f"corrupt or truncated: its SHA-256 differs from the one "
                              f"recorded in {own.name}"), ""
            return None, (f"not verifiable: its SHA-256 record {own.name} is "
                          f"{faults.get(own, 'missing')}, so its bytes cannot be checked"), ""
        try:
            state = load_checkpoint(path)
        except Exception as err:  # noqa: BLE001 - any unreadable file is the same fault
            return None, (f"unreadable ({type(err).__name__}: "
                          f"{str(err).splitlines()[0][:120]})"), ""
        if not isinstance(state, dict) or "next_iteration" not in state:
            return None, "not a SemiBench checkpoint", ""
        return state, "", actual

    def load(self, log: Any) -> Loaded | None:
        """The newest verified generation, or None. ``log`` receives one line per fault."""
        digests, faults = self._records()
        self._known = {}
        for path in (self.current, self.previous):
            state, why, actual = self._verified(path, digests, faults)
            if state is not None:
                self._known[path] = actual
                return Loaded(state, path)
            if why != "missing":
                log(f"{path} is {why}; ignoring it")
        return None

    def clear(self) -> None:
        """Remove every generation and record (the run starts afresh or has finished): the
        checkpoints first, so that no checkpoint is ever left without its record."""
        for path in (self.current, self.previous):
            path.unlink(missing_ok=True)
        for path in (self.current, self.previous):
            self.record(path).unlink(missing_ok=True)
        self._known = {}


def _record_digest(record: Path) -> str | None:
    """The SHA-256 a record holds, or None (missing, unreadable)."""
    try:
        digest = read_json(record)["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return digest if isinstance(digest, str) else None
