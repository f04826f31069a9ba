"""File helpers used everywhere results or downloads are written: checksums, atomic writes,
safe archive extraction and checksummed downloads."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from semibench.archive import UnsafeArchiveError, safe_extract  # noqa: F401
from semibench.errors import SemiBenchError

logger = logging.getLogger(__name__)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class ChecksumError(SemiBenchError, RuntimeError):
    """A file's SHA-256 does not match the pinned value."""


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual.lower() != expected.lower():
        raise ChecksumError(
            f"{path}: SHA-256 mismatch (expected {expected}, got {actual}); "
            "the file is corrupt or truncated"
        )


#: what ``atomic_path`` names its temporary files: ``.<final name>.<random>.tmp``
TEMPORARY_GLOB = ".*.*.tmp"


def no_space_message(path: str | Path) -> str:
    """"No space left on device", where, and how much is left there."""
    path = Path(path)
    try:
        left = f"{shutil.disk_usage(path.parent).free / 2**20:.1f} MiB free there"
    except OSError:
        left = "free space unknown"
    return f"no space left on device while writing {path} ({left})"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory; the rename is still atomic
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds.

    A killed or failing writer therefore never leaves a partial file under the final name, and
    the data reach the disk before the rename (fsync), so a power loss cannot leave an empty
    file under it either. A full disk is reported as such, naming the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are meant to be shared
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(err.errno, no_space_message(path), str(path)) from err
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_temporaries(directory: str | Path) -> list[Path]:
    """Delete what killed writers of ``atomic_path`` left in ``directory``; return them.

    Only for directories that one job owns (a run directory under its lock): a temporary file
    there belongs to a writer that is gone.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = sorted(directory.glob(TEMPORARY_GLOB))
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


class DirectoryBusyError(SemiBenchError, RuntimeError):
    """Another live process holds the lock of a directory (e.g. an orphaned training job)."""


def try_lock(path: str | Path) -> IO[str] | None:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) and write the holder into
    it; None if another live process holds it. The operating system drops the lock when its
    holder dies, however it dies, so a lock never needs to be removed by hand."""
    import fcntl

    handle = open(path, "a+")  # noqa: SIM115 - held open by the caller
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {platform.node()}\n")
    handle.flush()
    return handle


@contextmanager
def exclusive_directory(directory: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``directory`` (``.lock`` inside it) for the block: a second
    live writer fails at once instead of interleaving."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    handle = try_lock(directory / ".lock")
    if handle is None:
        holder = (directory / ".lock").read_text().strip() or "another process"
        raise DirectoryBusyError(f"{directory} is in use by {holder}; wait for it to end or "
                                 "stop it")
    try:
        yield directory
    finally:
        handle.close()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


MIRROR_ENV = "SEMIBENCH_MIRROR"


class ResumingDownloader:
    """A pooch downloader that survives interrupted downloads of large archives.

    What arrives is appended to ``partial`` (a hidden ``.part`` file next to the final one),
    which outlives a failed attempt; the next attempt asks the server only for the missing
    bytes (an HTTP ``Range`` request) and starts over if the server does not honour it. The
    complete file is handed to pooch, which verifies the checksum before it takes the final
    name, so an unverified file is never used.
    """

    def __init__(self, partial: Path, timeout: float = 60.0, progressbar: bool = True,
                 chunk_size: int = 1 << 16) -> None:
        self.partial = Path(partial)
        self.timeout = timeout
        self.progressbar = progressbar
        self.chunk_size = chunk_size

    def __call__(self, url: str, output_file: str, pooch_obj: Any = None,
                 check_only: bool = False) -> bool | None:
        import requests
        from tqdm.auto import tqdm

        if check_only:
            head = requests.head(url, allow_redirects=True, timeout=self.timeout)
            return head.status_code == 200
        have = self.partial.stat().st_size if self.partial.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
            if have and response.status_code == 416:  # nothing left to send: we have it all
                os.replace(self.partial, output_file)
                return None
            response.raise_for_status()
            if response.status_code == 206 and _range_start(response) != have:
                self.partial.unlink(missing_ok=True)  # not the bytes asked for: start over
                raise OSError(f"{url}: the server sent {response.headers.get('Content-Range')} "
                              f"for a request from byte {have}")
            if response.status_code != 206:
                have = 0  # no partial file, or the server sent the whole file again
            size = int(response.headers.get("Content-Length", 0))
            with (
                open(self.partial, "ab" if have else "wb") as handle,
                tqdm(total=have + size or None, initial=have, unit="B", unit_scale=True,
                     desc=self.partial.name.removeprefix(".").removesuffix(".part"),
                     disable=not self.progressbar) as bar,
            ):
                for chunk in response.iter_content(chunk_size=self.chunk_size):
                    handle.write(chunk)
                    bar.update(len(chunk))
        os.replace(self.partial, output_file)
        return None


def _range_start(response: Any) -> int | None:
    """First byte of a 206 response (``Content-Range: bytes <start>-<end>/<total>``)."""
    content_range = response.headers.get("Content-Range", "")
    unit, _, spec = content_range.partition(" ")
    start = spec.split("-", 1)[0]
    return int(start) if unit == "bytes" and start.isdigit() else None


def fetch_url(
    url: str, known_hash: str, dest_dir: str | Path, filename: str | None = None, attempts: int = 3
) -> Path:
    """Download ``url`` into ``dest_dir`` with pooch (retries, progress bar) and verify it.

    ``known_hash`` is ``"sha256:<hex>"`` (or a bare SHA-256) or a source's published
    ``"md5:<hex>"``. A file already present with the right checksum is not downloaded again.
    If the environment variable ``SEMIBENCH_MIRROR`` names a directory holding a file of the
    same name (a local mirror, e.g. for cluster nodes without internet), it is verified and
    copied instead of downloading. Network errors are retried ``attempts`` times with
    exponential back-off; an interrupted download resumes where it stopped, in this call or
    a later one (see :class:`ResumingDownloader`), and nothing unverified ever takes the final
    name.
    """
    import shutil

    import pooch

    if ":" not in known_hash:
        known_hash = f"sha256:{known_hash}"
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = filename or url.rstrip("/").split("/")[-1].split("?")[0]
    mirror = os.environ.get(MIRROR_ENV)
    if mirror and (Path(mirror) / name).is_file():
        source = Path(mirror) / name
        alg, digest = known_hash.split(":", 1)
        if pooch.file_hash(str(source), alg=alg) != digest.lower():
            raise ChecksumError(f"{source}: checksum does not match {known_hash}")
        with atomic_path(dest_dir / name) as tmp:
            shutil.copyfile(source, tmp)
        return dest_dir / name
    for attempt in range(1, attempts + 1):
        try:
            path = pooch.retrieve(
                url=url,
                known_hash=known_hash,
                path=dest_dir,
                fname=name,
                progressbar=True,
                downloader=ResumingDownloader(dest_dir / f".{name}.part"),
            )
            return Path(path)
        except ValueError as err:  # a hash mismatch (pooch deletes the file): never retried
            raise ChecksumError(f"{url}: {err}") from err
        except OSError as err:  # network errors (requests' exceptions are OSErrors)
            if attempt == attempts:
                raise
            wait = 2.0**attempt
            logger.warning("download of %s failed (%s); retry %d/%d in %.0f s", url, err,
                           attempt, attempts - 1, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")
