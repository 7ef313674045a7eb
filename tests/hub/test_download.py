"""Verified downloads against a local HTTP server on 127.0.0.1: every way a download can go wrong leaves nothing in
the cache, and a warm cache needs no network."""
from __future__ import annotations

import hashlib
import http.server
import io
import os
import tarfile
import threading

import pytest

from kws_zoo.core.errors import DownloadError
from kws_zoo.hub.download import RetryPolicy, extract_archive, fetch_verified

PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()
FAST = RetryPolicy(attempts=3, first_delay_s=0.01, timeout_s=5)


class Server:
    """Routes: /good, /tampered, /truncated, /flaky (HTTP 503 twice, then the file), /broken (always 500),
    /moved (302 to /good), /missing (404). Counts requests per route."""

    def __init__(self):
        self.hits: dict[str, int] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - the http.server API
                route = self.path.split("?")[0]
                server.hits[route] = server.hits.get(route, 0) + 1
                n = server.hits[route]
                if route == "/moved":
                    self.send_response(302)
                    self.send_header("Location", "/good")
                    self.end_headers()
                elif route == "/missing":
                    self.send_error(404)
                elif route == "/broken" or (route == "/flaky" and n <= 2):
                    self.send_error(503 if route == "/flaky" else 500)
                elif route in ("/good", "/flaky", "/tampered", "/truncated"):
                    body = bytearray(PAYLOAD)
                    if route == "/tampered":
                        body[1000] ^= 0xFF
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    # /truncated: the header promises the whole file, the connection closes at half of it
                    self.wfile.write(bytes(body[:len(body) // 2] if route == "/truncated" else body))
                    if route == "/truncated":
                        self.close_connection = True
                else:
                    self.send_error(404)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def _fetch(server, route, dest, **kw):
    return fetch_verified([f"{server.url}{route}"], str(dest), SHA, len(PAYLOAD), FAST, progress=False, **kw)


def _left_in(folder) -> list[str]:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_good_file_is_downloaded_and_verified(server, tmp_path):
    path = _fetch(server, "/good", tmp_path / "m.tar.gz")
    assert open(path, "rb").read() == PAYLOAD
    assert _left_in(tmp_path) == ["m.tar.gz"]


def test_wrong_hash_is_refused_and_nothing_is_cached(server, tmp_path):
    with pytest.raises(DownloadError, match="sha256.*refused"):
        _fetch(server, "/tampered", tmp_path / "m.tar.gz")
    assert server.hits["/tampered"] == 1  # the same bytes again would not help
    assert _left_in(tmp_path) == []


def test_truncated_transfer_is_retried_then_refused(server, tmp_path):
    with pytest.raises(DownloadError, match="attempt 3 of 3") as err:
        _fetch(server, "/truncated", tmp_path / "m.tar.gz")
    assert server.hits["/truncated"] == FAST.attempts
    assert "m.tar.gz" in str(err.value)
    assert _left_in(tmp_path) == []


def test_server_errors_are_retried(server, tmp_path):
    path = _fetch(server, "/flaky", tmp_path / "m.tar.gz")
    assert server.hits["/flaky"] == 3 and open(path, "rb").read() == PAYLOAD
    with pytest.raises(DownloadError, match="HTTP 500"):
        _fetch(server, "/broken", tmp_path / "other.tar.gz")
    assert server.hits["/broken"] == FAST.attempts


def test_redirect_is_followed(server, tmp_path):
    path = _fetch(server, "/moved", tmp_path / "m.tar.gz")
    assert server.hits == {"/moved": 1, "/good": 1} and open(path, "rb").read() == PAYLOAD


def test_next_url_after_a_missing_or_tampered_one(server, tmp_path):
    urls = [f"{server.url}/missing", f"{server.url}/tampered", f"{server.url}/good"]
    fetch_verified(urls, str(tmp_path / "m.tar.gz"), SHA, len(PAYLOAD), FAST, progress=False)
    assert server.hits == {"/missing": 1, "/tampered": 1, "/good": 1}


def test_offline_with_a_warm_cache(server, tmp_path):
    _fetch(server, "/good", tmp_path / "m.tar.gz")
    url = server.url
    server.close()  # nothing listens any more
    path = fetch_verified([f"{url}/good"], str(tmp_path / "m.tar.gz"), SHA, len(PAYLOAD), FAST, progress=False)
    assert open(path, "rb").read() == PAYLOAD
    server.httpd = server.thread = None
    server.close = lambda: None


def test_a_cached_file_that_no_longer_matches_is_fetched_again(server, tmp_path):
    (tmp_path / "m.tar.gz").write_bytes(PAYLOAD[:-1] + b"x")
    _fetch(server, "/good", tmp_path / "m.tar.gz")
    assert server.hits["/good"] == 1 and (tmp_path / "m.tar.gz").read_bytes() == PAYLOAD


def _tar(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return out.getvalue()


def test_archive_extracts_whole(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(_tar({"kws_zoo.json": b"{}", "export/model_int8.tflite": b"abc"}))
    folder = extract_archive(str(tmp_path / "a.tar.gz"), str(tmp_path / "out"))
    assert open(os.path.join(folder, "export", "model_int8.tflite"), "rb").read() == b"abc"


@pytest.mark.parametrize("members, links", [
    ({"ok.txt": b"1", "../escaped.txt": b"2"}, None),
    ({"ok.txt": b"1", "/tmp/kws_zoo_absolute_escape.txt": b"2"}, None),
    ({"ok.txt": b"1"}, {"link": "../../outside"}),
], ids=["dot-dot", "absolute", "symlink-out"])
def test_path_traversal_archive_is_refused(tmp_path, members, links):
    (tmp_path / "a.tar.gz").write_bytes(_tar(members, links))
    with pytest.raises(DownloadError, match="a.tar.gz: member .* refused"):
        extract_archive(str(tmp_path / "a.tar.gz"), str(tmp_path / "out" / "model"))
    assert not (tmp_path / "out" / "model").exists() and not (tmp_path / "escaped.txt").exists()
    assert not os.path.exists("/tmp/kws_zoo_absolute_escape.txt")
    assert _left_in(tmp_path / "out") == []
