"""The one downloader: every URL of a source is tried in turn; a dead mirror or a file that
fails its checksum moves on to the next, and when none gives the pinned file the error is one
line naming every URL tried."""

from __future__ import annotations

from pathlib import Path

import pytest

from semibench.io import ChecksumError, sha256_file
from semibench.tasks import _sources
from semibench.tasks._sources import FetchError, Source, download, fetch_sources
from semibench.tasks.base import read_manifest

PAYLOAD = b"the pinned file\n"


class _Task:
    name, source = "tiny", "a test source"


def _serve(monkeypatch, outcomes: dict[str, object]) -> list[str]:
    """fetch_url stand-in: each URL raises its exception or writes the payload."""
    calls: list[str] = []

    def fetch_url(url, known_hash, dest_dir, filename):
        calls.append(url)
        outcome = outcomes[url]
        if isinstance(outcome, BaseException):
            raise outcome
        path = Path(dest_dir) / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(outcome)
        return path

    monkeypatch.setattr(_sources, "fetch_url", fetch_url)
    return calls


def test_checksum_mismatch_and_network_error_move_on_to_the_next_url(tmp_path, monkeypatch):
    urls = ("https://a.example/f", "https://b.example/f", "https://c.example/f")
    calls = _serve(monkeypatch, {urls[0]: ChecksumError("a: checksum does not match"),
                                 urls[1]: ConnectionError("b: connection refused"),
                                 urls[2]: PAYLOAD})
    source = Source("f.bin", "sha256:" + "0" * 64, urls)
    fetch_sources(_Task(), [source], tmp_path)
    assert calls == list(urls)
    assert read_manifest(tmp_path)["files"] == {"f.bin": sha256_file(tmp_path / "f.bin")}


def test_every_url_failing_is_one_line_naming_each(tmp_path, monkeypatch):
    urls = ("https://a.example/f", "https://b.example/f")
    _serve(monkeypatch, {urls[0]: ChecksumError("checksum does not match"),
                         urls[1]: TimeoutError("timed out")})
    with pytest.raises(FetchError) as caught:
        fetch_sources(_Task(), [Source("f.bin", "md5:" + "1" * 32, urls)], tmp_path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("tiny: could not get f.bin")
    assert all(url in message for url in urls) and "timed out" in message
    assert not (tmp_path / "manifest.json").exists()


def test_a_published_size_that_differs_is_a_mismatch_too(tmp_path, monkeypatch):
    urls = ("https://a.example/f", "https://b.example/f")
    calls = _serve(monkeypatch, {url: PAYLOAD for url in urls})
    with pytest.raises(FetchError, match="bytes, the source publishes"):
        download(Source("f.bin", "sha256:x", urls, size=len(PAYLOAD) + 1), tmp_path)
    assert calls == list(urls) and not (tmp_path / "f.bin").exists()


def test_a_bug_is_not_swallowed(tmp_path, monkeypatch):
    _serve(monkeypatch, {"https://a.example/f": ZeroDivisionError("a bug")})
    with pytest.raises(ZeroDivisionError):
        download(Source("f.bin", "sha256:x", ("https://a.example/f",)), tmp_path)
