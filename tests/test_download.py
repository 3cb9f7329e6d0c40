"""The real download code against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mesolive.errors import DownloadError, InputError, ModelError
from mesolive.models import registry
from mesolive.models.download import MAX_DOWNLOAD_BYTES, download, sha256_file

from .conftest import MODELS

FILE = "Meso4_DF.h5"
#: What a mirror behind a password (mirror : p@ss:w/rd) expects to be sent.
PRIVATE = "Basic " + base64.b64encode(b"mirror:p@ss:w/rd").decode()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        mode, _, name = self.path.strip("/").partition("/")
        path = MODELS / name
        if mode == "private" and self.headers.get("Authorization") != PRIVATE:
            self.send_error(401)
            return
        if mode == "missing" or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        if mode in ("huge", "endless"):
            self._oversized(mode, body)
            return
        if mode == "badsum":
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "truncated":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif mode == "drop":
            self.wfile.write(body[:1000])
            self.wfile.flush()
            # RST instead of FIN: the client sees the connection reset mid-body.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        else:
            self.wfile.write(body)

    def _oversized(self, mode: str, body: bytes) -> None:
        """``huge``: announces 300 MB; ``endless``: no length, streams until cut off."""
        self.send_response(200)
        if mode == "huge":
            self.send_header("Content-Length", str(300 << 20))
        self.end_headers()
        try:
            for _ in range(1 if mode == "huge" else 64):
                self.wfile.write(body)  # 64 x 156 KB at most: 10 MB
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up, as it should
        self.close_connection = True


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = False
    t = threading.Thread(target=httpd.serve_forever, name="http-test", daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        t.join(timeout=5)


def _sha() -> str:
    return hashlib.sha256((MODELS / FILE).read_bytes()).hexdigest()


def test_good_download_is_verified_and_atomic(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / FILE
    download(f"{server}/good/{FILE}", dest, _sha(), progress=False)
    assert sha256_file(dest) == _sha()
    assert list(dest.parent.iterdir()) == [dest]  # no .part left behind


def test_a_mirror_behind_a_password_is_reached_with_it(server: str, tmp_path: Path) -> None:
    """Credentials in the URL (MESOLIVE_DOWNLOAD_BASE=https://user:pass@mirror/…) were
    looked up as part of the host name: "Name or service not known"."""
    secret = server.replace("http://", "http://mirror:p%40ss%3Aw%2Frd@")
    dest = tmp_path / FILE
    download(f"{secret}/private/{FILE}", dest, _sha(), progress=False)
    assert sha256_file(dest) == _sha()
    with pytest.raises(DownloadError, match="HTTP 401"):
        download(f"{server}/private/{FILE}", tmp_path / "x" / FILE, _sha(), progress=False)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("truncated", "cut short|connection dropped"),
        ("badsum", "checksum mismatch"),
        ("missing", "HTTP 404"),
        ("drop", "connection dropped|cut short|cannot reach"),
    ],
)
def test_failed_download_leaves_nothing(
    server: str, tmp_path: Path, mode: str, message: str
) -> None:
    dest = tmp_path / FILE
    with pytest.raises(DownloadError, match=message) as info:
        download(f"{server}/{mode}/{FILE}", dest, _sha(), progress=False)
    assert FILE in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_no_network_names_the_file(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match=f"{FILE}: cannot reach"):
        download(f"http://127.0.0.1:{port}/{FILE}", tmp_path / FILE, _sha(), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_registry_downloads_into_cache_and_replaces_corrupt_file(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MESOLIVE_MODEL_DIR")
    monkeypatch.setenv("MESOLIVE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MESOLIVE_DOWNLOAD_BASE", f"{server}/good")
    spec = registry.get_spec("meso4-df")
    path = registry.weights_path(spec, progress=False)
    assert path == tmp_path / "models" / FILE and sha256_file(path) == spec.sha256
    path.write_bytes(b"corrupt")  # a damaged cache entry is fetched again
    assert sha256_file(registry.weights_path(spec, progress=False)) == spec.sha256
    monkeypatch.setenv("MESOLIVE_DOWNLOAD_BASE", f"{server}/badsum")
    path.unlink()
    with pytest.raises(ModelError, match="checksum mismatch"):
        registry.weights_path(spec, progress=False)
    assert not path.exists()


def test_offline_folder_missing_file(tmp_path: Path) -> None:
    spec = registry.get_spec("meso4-f2f")
    with pytest.raises(ModelError, match=r"Meso4_F2F\.h5: model file missing"):
        registry.weights_path(spec, tmp_path, progress=False)


def test_offline_mode_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESOLIVE_MODEL_DIR")
    monkeypatch.setenv("MESOLIVE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MESOLIVE_OFFLINE", "1")
    with pytest.raises(ModelError, match="MESOLIVE_OFFLINE"):
        registry.weights_path(registry.get_spec("meso4-df"), progress=False)


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ModelError, match="known models: meso4-df"):
        registry.get_spec("meso5")


def test_an_announced_oversized_body_is_refused_before_reading(server: str, tmp_path: Path) -> None:
    size = (MODELS / FILE).stat().st_size
    with pytest.raises(DownloadError, match=f"announces {300 << 20} bytes, more than the {size}"):
        download(f"{server}/huge/{FILE}", tmp_path / FILE, _sha(), size=size, progress=False)
    with pytest.raises(DownloadError, match=f"more than the {MAX_DOWNLOAD_BYTES} expected"):
        download(f"{server}/huge/{FILE}", tmp_path / FILE, None, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_an_endless_body_is_cut_at_the_known_size(server: str, tmp_path: Path) -> None:
    size = (MODELS / FILE).stat().st_size
    with pytest.raises(DownloadError, match=f"sent more than the {size} bytes expected") as info:
        download(f"{server}/endless/{FILE}", tmp_path / FILE, _sha(), size=size, progress=False)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_the_registry_caps_downloads_at_the_manifest_size(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MESOLIVE_MODEL_DIR")
    monkeypatch.setenv("MESOLIVE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MESOLIVE_DOWNLOAD_BASE", f"{server}/endless")
    spec = registry.get_spec("meso4-df")
    assert spec.size == (MODELS / FILE).stat().st_size
    with pytest.raises(DownloadError, match=f"sent more than the {spec.size} bytes"):
        registry.weights_path(spec, progress=False)
    assert not any((tmp_path / "models").iterdir())


def test_a_mirror_url_without_a_scheme_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MESOLIVE_MODEL_DIR")
    monkeypatch.setenv("MESOLIVE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MESOLIVE_DOWNLOAD_BASE", "mirror.example/models")
    with pytest.raises(
        InputError, match=r"^MESOLIVE_DOWNLOAD_BASE=mirror\.example/models: expected"
    ):
        registry.weights_path(registry.get_spec("meso4-df"), progress=False)
