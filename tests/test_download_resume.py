"""Downloads resume where an interrupted attempt stopped, against a real local HTTP server."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from semibench import io as sio
from semibench.io import ChecksumError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class FlakyServer:
    """Serves PAYLOAD; the first ``cut`` requests send only half of what they promise and drop
    the connection. ``ranges`` controls whether Range requests are honoured."""

    def __init__(self, cut: int = 1, ranges: bool = True) -> None:
        self.cut, self.ranges, self.requests = cut, ranges, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest's output clean
                pass

            def do_GET(self) -> None:
                server.requests.append(self.headers.get("Range"))
                start = 0
                if server.ranges and self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                body = PAYLOAD[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if len(server.requests) <= server.cut:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/archive.tar.gz"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def no_wait(monkeypatch):
    monkeypatch.setattr(sio.time, "sleep", lambda s: None)
    monkeypatch.delenv(sio.MIRROR_ENV, raising=False)
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_interrupted_download_resumes_with_a_range_request(tmp_path, no_wait):
    server = FlakyServer(cut=1)
    try:
        path = sio.fetch_url(server.url, sha256(PAYLOAD), tmp_path)
    finally:
        server.close()
    assert path.read_bytes() == PAYLOAD
    # the second attempt asked only for bytes the first one did not deliver (what arrived is
    # kept whole chunk by whole chunk: at most the first half)
    assert len(server.requests) == 2 and server.requests[0] is None
    offset = int(server.requests[1].removeprefix("bytes=").removesuffix("-"))
    assert 0 < offset <= len(PAYLOAD) // 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive.tar.gz"]


def test_server_without_range_support_restarts_from_zero(tmp_path, no_wait):
    server = FlakyServer(cut=1, ranges=False)
    try:
        path = sio.fetch_url(server.url, sha256(PAYLOAD), tmp_path)
    finally:
        server.close()
    assert path.read_bytes() == PAYLOAD
    assert len(server.requests) == 2


def test_partial_file_survives_until_the_next_run(tmp_path, no_wait):
    server = FlakyServer(cut=2)
    try:
        with pytest.raises(OSError):
            sio.fetch_url(server.url, sha256(PAYLOAD), tmp_path, attempts=1)
        partial = tmp_path / ".archive.tar.gz.part"
        first = partial.stat().st_size
        assert 0 < first <= len(PAYLOAD) // 2
        assert partial.read_bytes() == PAYLOAD[:first]
        assert not (tmp_path / "archive.tar.gz").exists()
        # a later run (e.g. the rule rerun by Snakemake) picks up where this one stopped
        with pytest.raises(OSError):
            sio.fetch_url(server.url, sha256(PAYLOAD), tmp_path, attempts=1)
        second = partial.stat().st_size
        assert first < second < len(PAYLOAD)
        path = sio.fetch_url(server.url, sha256(PAYLOAD), tmp_path, attempts=1)
    finally:
        server.close()
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [None, f"bytes={first}-", f"bytes={second}-"]
    assert not partial.exists()


def test_checksum_mismatch_keeps_nothing(tmp_path, no_wait):
    server = FlakyServer(cut=0)
    try:
        with pytest.raises(ChecksumError):
            sio.fetch_url(server.url, sha256(b"something else"), tmp_path)
    finally:
        server.close()
    assert list(tmp_path.iterdir()) == []
    assert len(server.requests) == 1  # a wrong checksum is not retried
