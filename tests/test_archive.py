"""safe_extract against archives that try to write outside their folder or fill the disk.

Every attack runs in ``tmp_path/work``, which holds the target ``out/`` and a sibling
``sentinel/``; after a refusal nothing under ``work`` may have changed, ``out/`` included.
"""

from __future__ import annotations

import io
import os
import random
import stat
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

from semibench.archive import (
    CorruptArchiveError,
    UnsafeArchiveError,
    iter_members,
    read_members,
    safe_extract,
    verify_archive,
)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "work" / "sentinel").mkdir(parents=True)
    (tmp_path / "arc").mkdir()
    return tmp_path / "work"


def _tree(top: Path) -> dict[str, tuple[str, int | str]]:
    """Everything under ``top`` (links not followed): relative path -> (kind, size or target)."""
    found: dict[str, tuple[str, int | str]] = {}
    for folder, dirs, files in os.walk(top, followlinks=False):
        for name in dirs + files:
            path = Path(folder, name)
            info = path.lstat()
            rel = str(path.relative_to(top))
            if stat.S_ISLNK(info.st_mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[rel] = ("dir", 0)
            else:
                found[rel] = ("file", info.st_size)
    return found


def _refused(archive: Path, work: Path, match: str, **kwargs) -> None:
    """Extraction into work/out is refused with a one-line message and changes nothing."""
    before = _tree(work)
    with pytest.raises(UnsafeArchiveError, match=match) as info:
        safe_extract(archive, work / "out", **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(archive) in message and "member" in message
    assert _tree(work) == before
    assert not any((work / "sentinel").iterdir())


def _tar(path: Path, *members: tarfile.TarInfo | tuple[str, bytes], mode: str = "w:gz") -> Path:
    """A tar archive of TarInfos (no data) and (name, data) regular files, in that order."""
    with tarfile.open(path, mode) as tf:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tf.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tf.addfile(info, io.BytesIO(member[1]))
    return path


def _info(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def _zip(path: Path, *members: tuple[str | zipfile.ZipInfo, bytes],
         compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


# --------------------------------------------------------------------------- what must work


def test_tar_gz_with_nested_folders(work):
    noise = random.Random(0).randbytes(3_000_000)  # incompressible, like images
    arc = _tar(work.parent / "arc" / "a.tar.gz", _info(".", tarfile.DIRTYPE),
               _info("./top", tarfile.DIRTYPE), ("./top/a.txt", b"alpha"),
               ("top/sub/deeper/b.bin", bytes(range(256)) * 10), ("top//sub/./c.txt", b""),
               ("other.txt", noise))
    (work / "out").mkdir()
    (work / "out" / "keep.txt").write_text("mine")
    names = safe_extract(arc, work / "out")
    assert names == [".", "./top", "./top/a.txt", "top/sub/deeper/b.bin", "top//sub/./c.txt",
                     "other.txt"]
    out = work / "out"
    assert (out / "top" / "a.txt").read_bytes() == b"alpha"
    assert (out / "top" / "sub" / "deeper" / "b.bin").read_bytes() == bytes(range(256)) * 10
    assert (out / "top" / "sub" / "c.txt").read_bytes() == b""
    assert (out / "other.txt").read_bytes() == noise
    assert (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "other.txt", "top"]  # no temp
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((out / "top" / "a.txt").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((out / "top" / "sub").stat().st_mode) == 0o777 & ~umask


@pytest.mark.parametrize("mode", ["w", "w:bz2", "w:xz"])
def test_other_tar_compressions(work, mode):
    arc = _tar(work.parent / "arc" / "a.tar", ("d/f.txt", b"hi"), mode=mode)
    assert safe_extract(arc, work / "out") == ["d/f.txt"]
    assert (work / "out" / "d" / "f.txt").read_bytes() == b"hi"


def test_zip_with_nested_folders(work):
    arc = _zip(work.parent / "arc" / "a.zip", ("top/", b""), ("top/a.txt", b"alpha"),
               ("top/sub/b.txt", b"beta" * 1000), ("c.txt", b"gamma"))
    names = safe_extract(arc, work / "new" / "out")  # creates the missing folders
    out = work / "new" / "out"
    assert names == ["top/", "top/a.txt", "top/sub/b.txt", "c.txt"]
    assert (out / "top" / "a.txt").read_bytes() == b"alpha"
    assert (out / "top" / "sub" / "b.txt").read_bytes() == b"beta" * 1000
    assert (out / "c.txt").read_bytes() == b"gamma"
    assert sorted(p.name for p in out.iterdir()) == ["c.txt", "top"]


def test_merges_into_existing_folders_and_replaces_files(work):
    out = work / "out"
    (out / "top").mkdir(parents=True)
    (out / "top" / "old.txt").write_text("old")
    (out / "top" / "same.txt").write_text("before")
    arc = _zip(work.parent / "arc" / "a.zip", ("top/new.txt", b"new"), ("top/same.txt", b"after"))
    safe_extract(arc, out)
    assert (out / "top" / "old.txt").read_text() == "old"
    assert (out / "top" / "new.txt").read_text() == "new"
    assert (out / "top" / "same.txt").read_text() == "after"


def test_existing_symlink_at_a_file_name_is_replaced_not_followed(work):
    (work / "sentinel" / "f.txt").write_text("precious")
    out = work / "out"
    out.mkdir()
    (out / "f.txt").symlink_to(work / "sentinel" / "f.txt")
    safe_extract(_tar(work.parent / "arc" / "a.tar.gz", ("f.txt", b"archive")), out)
    assert not (out / "f.txt").is_symlink() and (out / "f.txt").read_text() == "archive"
    assert (work / "sentinel" / "f.txt").read_text() == "precious"


def test_stale_temporary_folder_of_a_killed_extraction_is_removed(work):
    arc = _tar(work.parent / "arc" / "a.tar.gz", ("f.txt", b"x"))
    stale = work / "out" / ".extract-a.tar.gz.0123456789ab"
    (stale / "half").mkdir(parents=True)
    (stale / "half" / "partial.jpg").write_bytes(b"\xff\xd8")
    safe_extract(arc, work / "out")
    assert sorted(p.name for p in (work / "out").iterdir()) == ["f.txt"]


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("fmt", ["tar", "zip"])
@pytest.mark.parametrize("name", ["../sentinel/evil.txt", "a/../../sentinel/evil.txt",
                                  "ABSOLUTE", "//ABSOLUTE", "..", "a/b/../../.."])
def test_escaping_names_are_refused(work, fmt, name):
    name = name.replace("/ABSOLUTE", str(work / "sentinel" / "evil.txt"))
    name = name.replace("ABSOLUTE", str(work / "sentinel" / "evil.txt"))
    members = [("ok/first.txt", b"fine"), (name, b"evil")]  # a good member first: not kept
    arc = work.parent / "arc" / f"a.{fmt}"
    if fmt == "tar":
        _tar(arc, *members)
    else:
        _zip(arc, *members)
    _refused(arc, work, "absolute|'\\.\\.'")


@pytest.mark.parametrize("name", ["..\\..\\sentinel\\evil.txt", "ok\\..\\..\\evil.txt",
                                  "C:/sentinel/evil.txt", "C:evil.txt", "c:\\evil.txt"])
def test_zip_backslash_and_drive_letter_names_are_refused(work, name):
    arc = _zip(work.parent / "arc" / "a.zip", ("ok.txt", b"fine"), (name, b"evil"))
    _refused(arc, work, "backslash|drive letter")


def test_name_longer_than_path_max_is_refused(work):
    name = "/".join(["d" * 250] * 17) + "/f.txt"
    _refused(_tar(work.parent / "arc" / "a.tar.gz", (name, b"x")), work, "longer than")


def test_duplicate_and_conflicting_names_are_refused(work):
    arc = _tar(work.parent / "arc" / "a.tar.gz", ("f.txt", b"one"), ("f.txt", b"two"))
    _refused(arc, work, "already taken")
    arc = _zip(work.parent / "arc" / "b.zip", ("x", b"file"), ("x/y.txt", b"under a file"))
    _refused(arc, work, "already taken")


def test_conflict_with_the_existing_folder_moves_nothing(work):
    out = work / "out"
    (out / "b" / "c.txt").mkdir(parents=True)  # a folder where the archive has a file
    arc = _zip(work.parent / "arc" / "a.zip", ("a/1.txt", b"1"), ("b/c.txt", b"2"))
    _refused(arc, work, "already holds a folder")
    assert not (out / "a").exists()


# --------------------------------------------------------------------------- links


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
@pytest.mark.parametrize("target", ["../sentinel", "../sentinel/evil.txt", "ABSOLUTE",
                                    "inside.txt"])
def test_links_are_refused(work, kind, target):
    target = target.replace("ABSOLUTE", str(work / "sentinel" / "evil.txt"))
    arc = _tar(work.parent / "arc" / "a.tar.gz", ("inside.txt", b"x"),
               _info("link", kind, target), ("link/evil.txt", b"evil"),
               ("link", b"evil through a hard link"))
    _refused(arc, work, "symlink refused|hard link refused")


def test_symlink_then_file_through_it_is_refused(work):
    arc = _tar(work.parent / "arc" / "a.tar.gz", _info("s", tarfile.SYMTYPE, "../sentinel"),
               ("s/evil.txt", b"evil"))
    _refused(arc, work, "symlink refused")


def test_symlink_chain_is_refused(work):
    arc = _tar(work.parent / "arc" / "a.tar.gz", _info("a", tarfile.DIRTYPE),
               _info("l1", tarfile.SYMTYPE, "a"), _info("a/l2", tarfile.SYMTYPE, ".."),
               _info("l3", tarfile.SYMTYPE, "l1/l2/l1/l2/.."), ("l3/sentinel/evil.txt", b"evil"))
    _refused(arc, work, "symlink refused")


def test_cve_2025_4517_path_max_symlink_chain_is_refused(work):
    """Lexically short names whose resolved path passes PATH_MAX and points outside: 16 nested
    247-character folders, each reachable through a one-letter link, a link at the bottom that
    climbs back up, and a link through it that lands in the parent of the target."""
    comp, steps = "d" * 247, "abcdefghijklmnop"
    members: list[tarfile.TarInfo | tuple[str, bytes]] = []
    prefix = ""
    for step in steps:
        members += [_info(prefix + comp, tarfile.DIRTYPE),
                    _info(prefix + step, tarfile.SYMTYPE, comp)]
        prefix += comp + "/"
    deep = "/".join(steps) + "/" + "l" * 254
    members += [_info(deep, tarfile.SYMTYPE, "/".join([".."] * len(steps))),
                _info("escape", tarfile.SYMTYPE, deep + "/.."),
                ("escape/sentinel/evil.txt", b"evil")]
    _refused(_tar(work.parent / "arc" / "a.tar", *members, mode="w"), work, "symlink refused")


def test_file_through_a_symlink_already_in_the_target_is_refused(work):
    out = work / "out"
    out.mkdir()
    (out / "images").symlink_to(work / "sentinel", target_is_directory=True)
    arc = _tar(work.parent / "arc" / "a.tar.gz", ("images/evil.jpg", b"evil"))
    _refused(arc, work, "not a real folder")


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE, b"Q"])
def test_devices_fifos_and_unknown_types_are_refused(work, kind):
    info = _info("node", kind)
    info.devmajor, info.devminor = 1, 3
    arc = _tar(work.parent / "arc" / "a.tar.gz", ("ok.txt", b"x"), info)
    _refused(arc, work, "device node|FIFO|member type")


@pytest.mark.parametrize("fmt", [stat.S_IFLNK, stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK,
                                 stat.S_IFSOCK])
def test_zip_unix_special_files_are_refused(work, fmt):
    info = zipfile.ZipInfo("special")
    info.create_system, info.external_attr = 3, (fmt | 0o777) << 16
    arc = _zip(work.parent / "arc" / "a.zip", (info, b"../sentinel"))
    _refused(arc, work, "refused")


# --------------------------------------------------------------------------- size caps


def test_zip_bomb_is_refused_by_the_ratio_cap(work):
    arc = _zip(work.parent / "arc" / "a.zip", ("ok.txt", b"x"), ("zeros.bin", bytes(8 << 20)))
    assert arc.stat().st_size < 20_000
    _refused(arc, work, "'zeros.bin'.*cap")


def test_tar_bomb_is_refused_by_the_total_cap(work):
    arc = _tar(work.parent / "arc" / "a.tar.gz", ("a.bin", bytes(600_000)),
               ("b.bin", bytes(600_000)))
    _refused(arc, work, "'b.bin'.*cap of 1000000", max_total_bytes=1_000_000, max_ratio=None)


def test_member_count_cap(work):
    arc = _zip(work.parent / "arc" / "a.zip", *[(f"f{i}.txt", b"x") for i in range(11)])
    _refused(arc, work, "'f10.txt'.*more than 10 members", max_members=10)
    safe_extract(arc, work / "out", max_members=11)


def test_zip_header_understating_the_size_never_writes_more(work):
    """A member whose header says 10 bytes but whose deflate stream holds 4 MiB."""
    arc = _zip(work.parent / "arc" / "a.zip", ("lie.bin", bytes(4 << 20)))
    data = bytearray(arc.read_bytes())
    crc = zlib.crc32(bytes(10))
    local, central = data.find(b"PK\x03\x04"), data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 14, crc)
    struct.pack_into("<I", data, local + 22, 10)
    struct.pack_into("<I", data, central + 16, crc)
    struct.pack_into("<I", data, central + 24, 10)
    arc.write_bytes(bytes(data))
    try:
        safe_extract(arc, work / "out", max_total_bytes=1 << 20)
    except (UnsafeArchiveError, zipfile.BadZipFile):
        assert not (work / "out").exists()
    else:
        assert (work / "out" / "lie.bin").stat().st_size <= 10
    assert _tree(work).keys() <= {"sentinel", "out", "out/lie.bin"}


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_member_streaming_more_than_declared_is_refused(work, monkeypatch, fmt):
    """Bytes are counted as they are written, whatever the library would let through."""
    arc = work.parent / "arc" / f"a.{fmt}"
    if fmt == "tar":
        _tar(arc, ("small.bin", bytes(10)))
        monkeypatch.setattr(tarfile.TarFile, "extractfile",
                            lambda self, member: io.BytesIO(bytes(3 << 20)))
    else:
        _zip(arc, ("small.bin", bytes(10)))
        monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *a, **k: io.BytesIO(bytes(3 << 20)))
    _refused(arc, work, "'small.bin'.*more data than the 10 bytes")


def test_full_disk_says_so_and_where(work, monkeypatch):
    import semibench.archive as archive_mod

    class Full(io.BytesIO):
        def write(self, data):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(archive_mod, "open", lambda fd, mode: (os.close(fd), Full())[1],
                        raising=False)
    arc = _tar(work.parent / "arc" / "a.tar.gz", ("f.txt", b"x"))
    with pytest.raises(OSError, match=f"no space left on device while extracting {arc} into "):
        safe_extract(arc, work / "out")
    assert _tree(work) == {"sentinel": ("dir", 0)}


# --------------------------------------------------------------------------- the one reader


def _tar_of(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("suffix, mode", [(".tar.gz", "w:gz"), (".tar.bz2", "w:bz2"),
                                          (".tar", "w"), (".zip", None)])
def test_iter_members_streams_tar_and_zip(tmp_path, suffix, mode):
    members = {"./top/a.txt": b"alpha", "top/b.bin": b"\x00\x01" * 1000, "top/c.txt": b"gamma"}
    path = tmp_path / f"x{suffix}"
    if mode is None:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    else:
        _tar_of(path, members, mode)
    got = {m.name: m.file.read() for m in iter_members(path, lambda n: not n.endswith("c.txt"))}
    assert got == {"top/a.txt": b"alpha", "top/b.bin": b"\x00\x01" * 1000}


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a/../../b", "C:/x"])
def test_iter_members_refuses_path_traversal(tmp_path, name):
    path = _tar_of(tmp_path / "x.tar.gz", {"ok.txt": b"ok", name: b"bad"})
    with pytest.raises(UnsafeArchiveError, match="points outside the archive"):
        list(iter_members(path))


def test_a_truncated_or_damaged_archive_is_one_corrupt_archive_error(tmp_path):
    path = _tar_of(tmp_path / "x.tar.gz", {f"m{i}": os.urandom(50_000) for i in range(4)})
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(CorruptArchiveError, match="truncated or corrupt.*fetch again"):
        for member in iter_members(path):
            member.file.read()
    path.write_bytes(good[:-4] + bytes(4))  # the gzip trailer (length) damaged only
    with pytest.raises(CorruptArchiveError):
        verify_archive(path)
    path.write_bytes(good)
    with pytest.raises(CorruptArchiveError, match="no member.*missing"):
        read_members(path, {"m0": lambda f, n: f.read(n), "missing": lambda f, n: None})
