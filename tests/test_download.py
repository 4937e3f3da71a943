"""Downloads against a real HTTP server on 127.0.0.1 (no mocks): full, resumed, failing."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vadistill.data.download import download_file, file_sha256
from vadistill.errors import InputError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, so that a transfer spans several chunks


class RangeHandler(BaseHTTPRequestHandler):
    """Serves `server.files`; honours ``Range: bytes=N-`` except under /norange/.

    /truncate/<name> sends the first half of the body then closes the connection, once
    (the next request, with Range, gets the rest) — a connection dropping mid-transfer.
    /page/<name> answers with an HTML page, like a cloud-drive landing page.
    """

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append((self.path, self.headers.get("Range")))
        kind, _, name = self.path.lstrip("/").partition("/")
        data = self.server.files.get(name)
        if data is None:
            self.send_error(404, "Not Found")
            return
        if kind == "page":
            body = b"<html><body>Click here to download</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and kind != "norange":
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if kind == "truncate" and name not in self.server.truncated:
            self.server.truncated.add(name)
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.files = {"data.bin": PAYLOAD}
    httpd.requests = []
    httpd.truncated = set()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_full_download(server, tmp_path):
    target = tmp_path / "downloads" / "data.bin"
    result = download_file(f"{server.base}/plain/data.bin", target, progress=False,
                           expected_size=len(PAYLOAD), sha256=hashlib.sha256(PAYLOAD).hexdigest())
    assert result == target
    assert target.read_bytes() == PAYLOAD
    assert not target.with_name("data.bin.part").exists()
    assert file_sha256(target) == hashlib.sha256(PAYLOAD).hexdigest()


def test_resume_from_partial_file(server, tmp_path):
    target = tmp_path / "data.bin"
    target.with_name("data.bin.part").write_bytes(PAYLOAD[:300_000])
    download_file(f"{server.base}/plain/data.bin", target, progress=False)
    assert target.read_bytes() == PAYLOAD
    assert server.requests == [("/plain/data.bin", "bytes=300000-")]


def test_server_without_range_support_restarts(server, tmp_path):
    target = tmp_path / "data.bin"
    target.with_name("data.bin.part").write_bytes(b"stale bytes that must not stay in front")
    download_file(f"{server.base}/norange/data.bin", target, progress=False)
    assert target.read_bytes() == PAYLOAD


def test_complete_part_file_is_finished_without_refetching_the_body(server, tmp_path):
    target = tmp_path / "data.bin"
    target.with_name("data.bin.part").write_bytes(PAYLOAD)
    download_file(f"{server.base}/plain/data.bin", target, progress=False)  # server answers 416
    assert target.read_bytes() == PAYLOAD


def test_connection_dropped_mid_transfer_is_resumed(server, tmp_path):
    target = tmp_path / "data.bin"
    download_file(f"{server.base}/truncate/data.bin", target, progress=False, expected_size=len(PAYLOAD))
    assert target.read_bytes() == PAYLOAD
    assert len(server.requests) == 2 and server.requests[1][1] == f"bytes={len(PAYLOAD) // 2}-"


def test_existing_verified_file_is_not_downloaded_again(server, tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(PAYLOAD)
    download_file(f"{server.base}/plain/data.bin", target, progress=False, expected_size=len(PAYLOAD))
    assert server.requests == []


def test_checksum_mismatch_is_refused_and_removed(server, tmp_path):
    target = tmp_path / "data.bin"
    with pytest.raises(InputError, match="SHA-256"):
        download_file(f"{server.base}/plain/data.bin", target, progress=False, sha256="0" * 64)
    assert not target.exists() and not target.with_name("data.bin.part").exists()


def test_http_404(server, tmp_path):
    url = f"{server.base}/plain/missing.bin"
    with pytest.raises(InputError) as raised:
        download_file(url, tmp_path / "missing.bin", progress=False)
    assert raised.value.path == url
    assert "HTTP 404" in raised.value.problem and "--source PATH" in raised.value.problem
    assert list(tmp_path.iterdir()) == []


def test_unreachable_url_fails_quickly(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/data.bin"
    started = time.monotonic()
    with pytest.raises(InputError) as raised:
        download_file(url, tmp_path / "data.bin", progress=False, timeout=5)
    assert time.monotonic() - started < 5
    assert raised.value.path == url
    assert raised.value.problem.startswith("could not download: ")
    assert "download it by hand and pass --source PATH" in raised.value.problem


def test_html_page_instead_of_file(server, tmp_path):
    with pytest.raises(InputError, match="web page"):
        download_file(f"{server.base}/page/data.bin", tmp_path / "data.zip", progress=False)
    assert not (tmp_path / "data.zip").exists()


def test_malformed_url(tmp_path):
    with pytest.raises(InputError, match="could not download"):
        download_file("http://", tmp_path / "x.bin", progress=False)
