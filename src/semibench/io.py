"""File helpers used everywhere results or downloads are written: checksums, atomic writes,
safe archive extraction and checksummed downloads."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class ChecksumError(RuntimeError):
    """A file's SHA-256 does not match the pinned value."""


class UnsafeArchiveError(RuntimeError):
    """An archive member would be written outside the extraction directory."""


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
            "the file is corrupt or truncated, delete it and fetch again"
        )


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds.

    A killed or failing writer therefore never leaves a partial file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are meant to be shared
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _check_member(root: Path, name: str) -> Path:
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        raise UnsafeArchiveError(f"archive member {name!r} escapes {root}")
    return target


def safe_extract(archive: str | Path, dest: str | Path) -> list[str]:
    """Extract a tar or zip archive, refusing absolute paths, ``..`` and links that escape."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            for name in names:
                _check_member(root, name)
            zf.extractall(root)
        return names
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for member in members:
            _check_member(root, member.name)
        try:
            # the "data" filter rejects absolute names, links leaving ``root`` and device files
            tf.extractall(root, filter="data")
        except tarfile.FilterError as err:
            raise UnsafeArchiveError(f"{archive}: {err}") from err
        return [m.name for m in members]


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
            print(f"download of {url} failed ({err}); retry {attempt}/{attempts - 1} in "
                  f"{wait:.0f} s", file=sys.stderr)
            time.sleep(wait)
    raise AssertionError("unreachable")
