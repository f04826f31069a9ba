import io
import json
import os
import tarfile
import zipfile

import pytest

from semibench.io import (
    ChecksumError,
    UnsafeArchiveError,
    atomic_path,
    atomic_write_json,
    read_json,
    safe_extract,
    sha256_file,
    verify_sha256,
)


def test_sha256_known_value(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    assert sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    verify_sha256(p, "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD")
    with pytest.raises(ChecksumError, match="mismatch"):
        verify_sha256(p, "0" * 64)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"a": 2, "trunc')
        raise RuntimeError("killed mid-write")
    assert read_json(target) == {"a": 1}  # the old complete file survives
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left


def test_atomic_write_new_file_absent_on_failure(tmp_path):
    target = tmp_path / "sub" / "metrics.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("{")
        raise RuntimeError
    assert not target.exists()


def test_atomic_write_respects_umask(tmp_path):
    atomic_write_json(tmp_path / "x.json", [1])
    mode = os.stat(tmp_path / "x.json").st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    assert json.loads((tmp_path / "x.json").read_text()) == [1]


def _tar_with(tmp_path, name, data=b"x", link=None):
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo(name)
        if link:
            info.type, info.linkname = tarfile.SYMTYPE, link
            tf.addfile(info)
        else:
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_safe_extract_ok(tmp_path):
    names = safe_extract(_tar_with(tmp_path, "dir/file.txt", b"hello"), tmp_path / "out")
    assert names == ["dir/file.txt"]
    assert (tmp_path / "out" / "dir" / "file.txt").read_bytes() == b"hello"


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_safe_extract_rejects_traversal(tmp_path, name):
    with pytest.raises(UnsafeArchiveError):
        safe_extract(_tar_with(tmp_path, name), tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_safe_extract_rejects_escaping_symlink(tmp_path):
    with pytest.raises(UnsafeArchiveError):
        safe_extract(_tar_with(tmp_path, "link", link="../../etc/passwd"), tmp_path / "out")


def test_safe_extract_zip_traversal(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(UnsafeArchiveError):
        safe_extract(path, tmp_path / "out")


def test_fetch_url_retries_network_errors_but_not_checksum_errors(tmp_path, monkeypatch):
    import pooch

    from semibench import io as sio

    calls = []

    def flaky(**kwargs):
        calls.append(kwargs["url"])
        if len(calls) < 3:
            raise ConnectionError("connection reset")
        path = tmp_path / "f.bin"
        path.write_bytes(b"abc")
        return str(path)

    monkeypatch.setattr(pooch, "retrieve", flaky)
    monkeypatch.setattr(sio.time, "sleep", lambda s: None)
    monkeypatch.delenv("SEMIBENCH_MIRROR", raising=False)
    assert sio.fetch_url("https://example.org/f.bin", "0" * 64, tmp_path).name == "f.bin"
    assert len(calls) == 3

    def mismatch(**kwargs):
        calls.append(kwargs["url"])
        raise ValueError("SHA256 hash of downloaded file does not match")

    calls.clear()
    monkeypatch.setattr(pooch, "retrieve", mismatch)
    with pytest.raises(ChecksumError):
        sio.fetch_url("https://example.org/f.bin", "0" * 64, tmp_path)
    assert len(calls) == 1
