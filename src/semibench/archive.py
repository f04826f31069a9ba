"""The one archive reader (:func:`iter_members`: stream the files of a tar or zip archive,
extracting nothing) and extraction of tar and zip archives that the user supplies, without
trusting the archive (:func:`safe_extract`). A source archive that cannot be read to its end is
one :class:`CorruptArchiveError`.

CPython's own safeguards are not enough on every Python 3.11: ``tarfile``'s ``filter="data"``
misses a PATH_MAX symlink chain in 3.11.7 (CVE-2025-4517) and ``zipfile.extractall`` has no
size limit. So every member is checked here and every file is written here, by streaming the
member into a file created relative to a directory descriptor that this module opened, never
through a path that the archive or the existing folder could redirect.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import re
import secrets
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar

from semibench.errors import SemiBenchError

#: default cap on the bytes written in all (Semi-Aves' real archives are a few GB)
MAX_TOTAL_BYTES = 64 << 30
#: default cap on the number of members (Semi-Aves' largest archive has about 150,000)
MAX_MEMBERS = 1_000_000
#: default cap on bytes written per byte of archive (images barely compress; zeros reach ~1000)
MAX_RATIO = 100
#: bytes always allowed on top of ``max_ratio`` x archive size, so tiny archives never trip it
_RATIO_SLACK = 1 << 20
#: longest member name accepted, in bytes (Linux's PATH_MAX less the terminating NUL)
_MAX_NAME_BYTES = 4095
_CHUNK = 1 << 20

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DRIVE = re.compile(r"^[A-Za-z]:")
_TEMP_PREFIX = ".extract-"
T = TypeVar("T")


class UnsafeArchiveError(SemiBenchError, RuntimeError):
    """An archive member was refused: it could escape the target, is not a plain file or
    folder, or takes the archive past a size or member-count cap."""


@dataclass
class _Member:
    """What extraction needs to know about one member, whatever the archive format."""

    name: str  # as the archive spells it
    kind: str  # "file", "dir", or why the member is refused ("symlink", "device node", ...)
    size: int  # declared by the header; never trusted beyond the check against the cap
    executable: bool
    open: Callable[[], IO[bytes]]


def safe_extract(
    archive: str | Path,
    dest: str | Path,
    *,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_members: int = MAX_MEMBERS,
    max_ratio: float | None = MAX_RATIO,
) -> list[str]:
    """Extract a tar (any compression) or zip archive into ``dest``; return the member names.

    Policy (POSIX only):

    - only regular files and folders are extracted. Symbolic links and hard links are refused
      whatever they point to, as are device nodes, FIFOs and any other member type: an archive
      that cannot create a link cannot make a later member, or a later reader, follow one;
    - a name is refused if it is absolute, has a ``..`` component, a backslash, a drive letter
      (``C:``), a NUL or more than 4,095 bytes; ``.`` and empty components are dropped;
    - a name used twice for a file, or for both a file and a folder, is refused;
    - caps: ``max_members`` members, and at most ``min(max_total_bytes, max_ratio x archive
      size + 1 MiB)`` bytes in all. Each header's declared size is checked before its data is
      read, and the bytes really written are counted while streaming, so a header that lies
      about its size (a zip bomb) is stopped too;
    - everything is first written into a hidden temporary folder created inside the real path
      of ``dest``, by ``mkdir``/``open(O_CREAT | O_EXCL | O_NOFOLLOW)`` relative to directory
      descriptors opened with ``O_NOFOLLOW``; nothing is resolved through a path string. Only
      when the whole archive passed is it moved into ``dest``, entry by entry with
      ``rename``: a new top-level entry appears complete in one step; an existing real folder
      is merged into; an existing file or symbolic link at a file's name is replaced (the link
      itself, never what it points to); a folder where the archive has a file, or anything but
      a real folder (a symbolic link included) where it has a folder, is refused before
      anything is moved.

    On a refusal, :class:`UnsafeArchiveError` names the archive and the member, and ``dest``
    is left as it was. A process killed while extracting leaves a hidden ``.extract-<archive
    name>.*`` folder in ``dest`` (never a partial file under a final name), which the next
    extraction of the same archive removes.
    """
    archive, dest = Path(archive), Path(dest)
    size = archive.stat().st_size
    budget = max_total_bytes
    if max_ratio is not None:
        budget = min(budget, int(max_ratio * size) + _RATIO_SLACK)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve(strict=True)
    try:
        with _opened_dir(os.open(root, _DIR_FLAGS)) as root_fd:
            return _extract(archive, root_fd, budget, max_members)
    except BaseException as err:
        if created:
            with suppress(OSError):
                root.rmdir()  # only if still empty
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(err.errno, f"no space left on device while extracting {archive} into "
                                     f"{root}") from err
        raise


def _extract(archive: Path, root_fd: int, budget: int, max_members: int) -> list[str]:
    prefix = f"{_TEMP_PREFIX}{archive.name}."
    for stale in os.listdir(root_fd):  # left by a killed extraction of the same archive
        if stale.startswith(prefix) and stat.S_ISDIR(_lstat(stale, root_fd).st_mode):
            shutil.rmtree(stale, dir_fd=root_fd)
    temp = prefix + secrets.token_hex(6)
    os.mkdir(temp, 0o700, dir_fd=root_fd)
    try:
        with _opened_dir(os.open(temp, _DIR_FLAGS, dir_fd=root_fd)) as temp_fd:
            names, tops = _write_members(archive, temp_fd, budget, max_members)
            for top in tops:  # check every conflict first, then move: all or nothing
                _merge(archive, top, temp_fd, root_fd, top, move=False)
            for top in tops:
                _merge(archive, top, temp_fd, root_fd, top, move=True)
        return names
    finally:
        shutil.rmtree(temp, dir_fd=root_fd, ignore_errors=True)


def _write_members(
    archive: Path, temp_fd: int, budget: int, max_members: int
) -> tuple[list[str], list[str]]:
    """Write every member under ``temp_fd``; return the names and the top-level entries."""
    names: list[str] = []
    tops: dict[str, None] = {}
    declared = written = 0
    parents = _ParentCache(temp_fd)
    with ExitStack() as stack:
        stack.callback(parents.close)
        for member in stack.enter_context(closing(_members(archive))):
            names.append(member.name)

            def refuse(reason: str, member: _Member = member) -> UnsafeArchiveError:
                return UnsafeArchiveError(f"{archive}: member {member.name!r}: {reason}")

            if len(names) > max_members:
                raise refuse(f"more than {max_members} members (max_members)")
            if member.kind not in ("file", "dir"):
                raise refuse(f"{member.kind} refused: only regular files and folders are "
                             "extracted")
            parts = _parts(member.name, member.kind, refuse)
            if not parts:
                continue  # the archive's root folder ("." or "./")
            declared += member.size if member.kind == "file" else 0
            if declared > budget:
                raise refuse(f"the declared sizes pass the cap of {budget} bytes "
                             "(max_total_bytes, max_ratio)")
            tops.setdefault(parts[0], None)
            try:
                if member.kind == "dir":
                    os.close(parents.open(parts))
                    continue
                parent_fd = parents.get(parts[:-1])
                mode = 0o777 if member.executable else 0o666  # less the umask
                out_fd = os.open(parts[-1], _NEW_FILE_FLAGS, mode, dir_fd=parent_fd)
            except (FileExistsError, NotADirectoryError, IsADirectoryError) as err:
                raise refuse("its name is already taken by an earlier member") from err
            except OSError as err:
                if err.errno == errno.ELOOP:  # a symbolic link: none should ever be there
                    raise refuse("its path runs through a symbolic link") from err
                raise
            with open(out_fd, "wb") as out, member.open() as source:
                this = 0
                while chunk := source.read(_CHUNK):
                    this += len(chunk)
                    if this > member.size:
                        raise refuse(f"holds more data than the {member.size} bytes its header "
                                     "declares")
                    if written + this > budget:
                        raise refuse(f"the extracted data passes the cap of {budget} bytes "
                                     "(max_total_bytes, max_ratio)")
                    out.write(chunk)
            written += this
    return names, list(tops)


def _members(archive: Path) -> Iterator[_Member]:
    """The members of a zip, or of a tar read as one stream (no seeking back in a .tar.gz)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                yield _zip_member(zf, info)
        return
    with tarfile.open(archive, "r|*") as tf:
        for member in tf:
            yield _tar_member(tf, member)


def _tar_member(tf: tarfile.TarFile, member: tarfile.TarInfo) -> _Member:
    kind = ("file" if member.isreg() else "dir" if member.isdir()
            else "symlink" if member.issym() else "hard link" if member.islnk()
            else "device node" if member.ischr() or member.isblk()
            else "FIFO" if member.isfifo() else f"member type {member.type!r}")

    def opener() -> IO[bytes]:
        handle = tf.extractfile(member)
        assert handle is not None  # a regular file always has data
        return handle

    return _Member(member.name, kind, member.size, bool(member.mode & 0o100), opener)


def _zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Member:
    mode = info.external_attr >> 16 if info.create_system == 3 else 0  # 3: made on Unix
    fmt = stat.S_IFMT(mode)
    if info.is_dir() or fmt == stat.S_IFDIR:
        kind = "dir"
    elif fmt in (0, stat.S_IFREG):
        kind = "encrypted file" if info.flag_bits & 0x1 else "file"
    else:
        kind = {stat.S_IFLNK: "symlink", stat.S_IFCHR: "device node", stat.S_IFBLK: "device node",
                stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket"}.get(fmt, f"file type {fmt:o}")
    return _Member(info.filename, kind, info.file_size, bool(mode & 0o100),
                   lambda: zf.open(info))


def _parts(name: str, kind: str, refuse: Callable[[str], UnsafeArchiveError]) -> tuple[str, ...]:
    """The components of a member name, or a refusal if it could point anywhere else."""
    if "\x00" in name:
        raise refuse("NUL in the name")
    if "\\" in name:
        raise refuse("backslash in the name")
    if _DRIVE.match(name):
        raise refuse("drive letter in the name")
    if name.startswith("/"):
        raise refuse("absolute name")
    if len(os.fsencode(name)) > _MAX_NAME_BYTES:
        raise refuse(f"name longer than {_MAX_NAME_BYTES} bytes")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise refuse("'..' in the name")
    if not parts and kind != "dir":
        raise refuse("empty name")
    return parts


class _ParentCache:
    """Folders under the temporary root, created on demand and opened without following links;
    the last parent stays open, since an archive usually lists a folder's files together."""

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.parts: tuple[str, ...] | None = None
        self.fd = -1

    def open(self, parts: tuple[str, ...]) -> int:
        """A new descriptor of the folder ``parts``, created with its parents if missing."""
        fd = os.dup(self.root_fd)
        try:
            for part in parts:
                with suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def get(self, parts: tuple[str, ...]) -> int:
        """A descriptor of the folder ``parts``, owned by the cache."""
        if parts != self.parts:
            fd = self.open(parts)
            self.close()
            self.parts, self.fd = parts, fd
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.parts, self.fd = None, -1


def _merge(archive: Path, name: str, src_fd: int, dst_fd: int, rel: str, *, move: bool) -> None:
    """Move the extracted entry ``name`` into the folder ``dst_fd`` (see safe_extract's policy);
    with ``move=False`` only check that it can be moved."""
    src = _lstat(name, src_fd)
    try:
        dst = _lstat(name, dst_fd)
    except FileNotFoundError:
        if move:
            os.rename(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        return
    if stat.S_ISDIR(src.st_mode) and stat.S_ISDIR(dst.st_mode):
        with (_opened_dir(os.open(name, _DIR_FLAGS, dir_fd=src_fd)) as sub_src,
              _opened_dir(os.open(name, _DIR_FLAGS, dir_fd=dst_fd)) as sub_dst):
            for entry in sorted(os.listdir(sub_src)):
                _merge(archive, entry, sub_src, sub_dst, f"{rel}/{entry}", move=move)
    elif not stat.S_ISDIR(src.st_mode) and not stat.S_ISDIR(dst.st_mode):
        if move:
            os.replace(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
    else:
        what = "a folder" if stat.S_ISDIR(dst.st_mode) else "something that is not a real folder"
        raise UnsafeArchiveError(f"{archive}: member {rel!r}: the target already holds {what} "
                                 "there")


def _lstat(name: str, dir_fd: int) -> os.stat_result:
    return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)


@contextmanager
def _opened_dir(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- reading


class CorruptArchiveError(SemiBenchError, ValueError):
    """A source file that passed its checksum cannot be read: truncated, damaged, or without a
    member that its metadata lists."""


#: what zlib, gzip, tarfile and zipfile raise on truncated or malformed input
READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error)


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn the many ways a truncated or malformed source file fails into one clear error."""
    try:
        yield
    except CorruptArchiveError:
        raise
    except READ_ERRORS as err:
        raise CorruptArchiveError(
            f"{path}: the file is truncated or corrupt ({type(err).__name__}: {err}); "
            "delete it and fetch again"
        ) from err


class Member(NamedTuple):
    """One regular file of an archive: its name (no leading ``./``), size and a binary reader
    that is valid until the next member is asked for."""

    name: str
    size: int
    file: io.BufferedReader


class _RawMember(io.RawIOBase):
    """A raw-IO view of a streamed member whose read errors become CorruptArchiveError (in
    stream mode tarfile's file objects cannot be wrapped by ``io.TextIOWrapper`` directly:
    Python 3.11 asks the stream for ``seekable``)."""

    def __init__(self, handle: IO[bytes], archive: Path) -> None:
        self._handle, self._archive = handle, archive

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with reading(self._archive):
            data = self._handle.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _checked_name(name: str, archive: Path) -> str:
    """A member name without a leading ``./``; one that could point outside the archive's
    folder (absolute, a drive, ``..``) is refused."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if name.startswith(("/", "\\")) or _DRIVE.match(name) or ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} points outside the archive")
    return name[2:] if name.startswith("./") else name


def iter_members(path: Path, wanted: Callable[[str], bool] = lambda name: True
                 ) -> Iterator[Member]:
    """The regular files of a tar (plain, gzip, bzip2, xz) or zip archive whose name passes
    ``wanted``, in archive order: one sequential pass, nothing extracted to disk. A gzip
    stream is read to its end, so damage past the last member (its length and CRC-32) is
    noticed; every read error is a :class:`CorruptArchiveError`."""
    path = Path(path)
    with reading(path):
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    name = _checked_name(info.filename, path)
                    if not info.is_dir() and wanted(name):
                        with archive.open(info) as handle:  # checks the member's CRC
                            yield Member(name, info.file_size,
                                         io.BufferedReader(_RawMember(handle, path)))
            return
        with open(path, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            with ExitStack() as stack:
                stream: IO[bytes] = (stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
                                     if compressed else raw)
                archive = stack.enter_context(
                    tarfile.open(fileobj=stream, mode="r|" if compressed else "r|*"))
                for member in archive:
                    name = _checked_name(member.name, path)
                    if member.isfile() and wanted(name):
                        handle = archive.extractfile(member)
                        assert handle is not None  # regular files always have data
                        yield Member(name, member.size,
                                     io.BufferedReader(_RawMember(handle, path)))
                # tar's end marker comes before the end of the gzip stream
                while compressed and stream.read(1 << 20):
                    pass


def read_members(path: Path, readers: dict[str, Callable[[IO[bytes], int], T]]) -> dict[str, T]:
    """Read the named members in one sequential pass (seeking backwards in a .tar.gz means
    decompressing it again): ``readers`` maps a member name to ``reader(file, size)``. A
    missing member is a :class:`CorruptArchiveError`."""
    results = {m.name: readers[m.name](m.file, m.size)
               for m in iter_members(path, readers.__contains__)}
    missing = sorted(set(readers) - set(results))
    if missing:
        raise CorruptArchiveError(f"{path}: no member(s) {', '.join(missing)} in the archive")
    return results


def verify_archive(path: Path) -> None:
    """Read the whole archive once (members and trailer): truncation and damage that the reads
    of a few members might not reach."""
    for _ in iter_members(path, lambda name: False):
        pass
