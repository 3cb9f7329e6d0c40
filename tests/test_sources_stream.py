"""Network streams against a real FFmpeg server on 127.0.0.1: read, drop, retry, stall."""

from __future__ import annotations

import http.server
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from mesolive.errors import SourceError
from mesolive.pipeline.capture import GAP_REASON, CaptureThread
from mesolive.pipeline.mailbox import LatestSlot
from mesolive.sources.registry import make_source
from mesolive.sources.stream import StreamSource
from mesolive.types import Frame, ReadStatus
from tests.conftest import start_mesolive

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="needs the ffmpeg binary (apt ffmpeg)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port, without connecting to it.

    Connecting would use up FFmpeg's single ``-listen 1`` client, so read
    the kernel's socket table instead.
    """
    want = f"0100007F:{port:04X}"
    try:
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        time.sleep(1.0)  # no /proc: give FFmpeg a moment
        return True
    return any(r.split()[1] == want and r.split()[3] == "0A" for r in rows)


class Server:
    """``ffmpeg -re`` serving a clip as MPEG-TS over HTTP, one client, until killed."""

    def __init__(self, clip: Path, port: int) -> None:
        self.clip, self.port = clip, port
        self.url = f"http://127.0.0.1:{port}/live.ts"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        source = ["-re", "-stream_loop", "-1", "-i", str(self.clip)]
        serve = ["-an", "-c", "copy", "-f", "mpegts", "-listen", "1", self.url]
        self.proc = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-v", "error", *source, *serve],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while not listening(self.port):
            assert self.proc.poll() is None, "ffmpeg server exited"
            assert time.monotonic() < deadline, "ffmpeg server did not start listening"
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(10)


@pytest.fixture
def server(shared: Path) -> Iterator[Server]:
    srv = Server(shared / "videos" / "real" / "hamilton_clip.mp4", free_port())
    srv.start()
    yield srv
    srv.kill()


def wait_for(statuses: list[tuple[ReadStatus, str]], text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        for _, message in list(statuses):
            if text in message:
                return message
        assert time.monotonic() < deadline, f"no status with {text!r}: {statuses}"
        time.sleep(0.02)


@needs_ffmpeg
def test_stream_reads_frames(server: Server) -> None:
    src = make_source(server.url)
    assert isinstance(src, StreamSource) and src.is_live
    with src:
        assert src.fps == pytest.approx(29.97, abs=0.1)
        frames = []
        while len(frames) < 10:
            status, frame, message = src.read(1.0)
            assert status is ReadStatus.OK, message
            assert frame is not None
            frames.append(frame)
    assert [f.index for f in frames] == list(range(10))
    img = frames[0].image
    assert img.shape == (360, 640, 3) and img.dtype == np.uint8 and img.flags["C_CONTIGUOUS"]
    assert not np.shares_memory(frames[0].image, frames[1].image)


@pytest.fixture
def warnings_logged(warnings_from: Callable[[str], list[str]]) -> list[str]:
    return warnings_from("mesolive.pipeline.capture")


@needs_ffmpeg
@pytest.mark.slow
def test_dropped_stream_is_retried_and_reported(server: Server, warnings_logged: list[str]) -> None:
    url = server.url.replace("http://", "http://alice:s3cret@")
    shown = server.url.replace("http://", "http://alice:***@")
    statuses: list[tuple[ReadStatus, str]] = []
    slot: LatestSlot[Frame] = LatestSlot()
    thread = CaptureThread(make_source(url), slot, on_status=lambda s, m: statuses.append((s, m)))
    thread.start()
    try:
        first = slot.take(10.0)
        assert first is not None, statuses
        server.kill()  # the stream drops mid-run
        dropped = wait_for(statuses, "stream dropped; retrying in 0.5 s", 10)
        assert dropped.startswith(shown)
        # While the server is down each attempt fails fast and the wait doubles.
        refused = wait_for(statuses, "cannot open the stream", 10)
        assert "retrying in 1 s" in refused
        server.start()
        wait_for(statuses, "reconnected: capturing", 15)
        frame = slot.take(10.0)
        while frame is not None and frame.index <= first.index:
            frame = slot.take(10.0)
        assert frame is not None and frame.image.shape == (360, 640, 3)
    finally:
        assert thread.stop()
    assert statuses[0][0] is ReadStatus.OK
    assert thread.last_status is ReadStatus.OK
    assert not slot.closed  # a live source never ends by itself
    # The outage: two warnings (the retries in between are INFO) and one record.
    assert warnings_logged[0] == f"{shown}: stream lost, reconnecting… (stream dropped)"
    assert re.fullmatch(
        rf"{re.escape(shown)}: reconnected after \d+\.\d s, \d+ frames lost", warnings_logged[1]
    )
    (outage,) = thread.outages
    assert outage.recovered and outage.reason == "stream dropped"
    assert outage.duration > 1.0  # at least the 0.5 s and 1 s waits
    assert outage.frames_lost == max(0, round(outage.duration * 29.97) - 1)
    assert "s3cret" not in " ".join(warnings_logged + [m for _, m in statuses])


@needs_ffmpeg
@pytest.mark.slow
def test_a_pause_shorter_than_the_read_timeout_is_recorded(
    server: Server, warnings_logged: list[str]
) -> None:
    # The server stops sending for 3.5 s, less than the read timeout (5 s):
    # no read fails, but nothing was analysed meanwhile, so it is an outage.
    slot: LatestSlot[Frame] = LatestSlot()
    thread = CaptureThread(make_source(server.url), slot)

    def analyse() -> None:  # a consumer at 100 frames/s: it keeps up with 30 fps
        if slot.take(1.0) is not None:
            time.sleep(0.01)

    thread.start()
    try:
        assert slot.take(10.0) is not None
        time.sleep(1.0)  # past the burst FFmpeg's probing gives at the start
        analyse()
        drops = thread.drops
        assert server.proc is not None
        server.proc.send_signal(signal.SIGSTOP)
        time.sleep(3.5)
        server.proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 15
        while not thread.outages:
            assert time.monotonic() < deadline, "the pause was not recorded"
            analyse()
        n = thread.frames_read
        while thread.frames_read < n + 10:  # and the stream goes on
            assert time.monotonic() < deadline, "no frames after the pause"
            analyse()
    finally:
        assert thread.stop()
    (outage,) = thread.outages
    assert outage.reason == GAP_REASON and outage.recovered
    assert CaptureThread.GAP <= outage.duration < 5.0
    nominal = max(0, round(outage.duration * 29.97) - 1)
    assert outage.frames_lost is not None and outage.frames_lost + outage.frames_late == nominal
    # ffmpeg -re sends what it held back at once: read late, not lost; the slot keeps
    # the newest, and those overwritten are drops. They were counted as lost as well.
    assert outage.frames_late >= nominal - 10
    dropped = thread.drops - drops
    assert dropped > nominal // 2  # the burst came faster than the consumer takes
    assert dropped + outage.frames_lost <= nominal + 10  # each frame counted once
    assert thread.drops_behind - drops <= 10  # the consumer kept up: the rest came in the burst
    assert thread.restarts == 0
    (warning,) = warnings_logged
    assert re.fullmatch(
        rf"{re.escape(server.url)}: no frames for \d+\.\d s, \d+ frames lost, "
        r"\d+ came late in a burst",
        warning,
    )


@needs_ffmpeg
def test_a_silent_server_fails_the_read_within_its_timeout(server: Server) -> None:
    # The server stops sending but keeps the connection open (SIGSTOP): the
    # read timeout, not the peer, ends the wait.
    src = StreamSource(server.url, read_timeout=1.0)
    with src:
        assert src.read(1.0)[0] is ReadStatus.OK
        assert server.proc is not None
        server.proc.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        status, _, message = src.read(1.0)
        while status is ReadStatus.OK:  # what was already on its way still arrives
            assert time.monotonic() - t0 < 30, "reads never failed"
            status, _, message = src.read(1.0)
    assert status is ReadStatus.ERROR and message == f"{server.url}: stream dropped"
    assert time.monotonic() - t0 < 30  # bounded by the timeout (generous, not a timing test)


def test_stalled_server_times_out() -> None:
    # The kernel accepts the connection (backlog) but nobody ever answers.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        src = StreamSource(f"http://127.0.0.1:{port}/x.ts", open_timeout=1.0, read_timeout=1.0)
        t0 = time.monotonic()
        with pytest.raises(SourceError, match="no answer within 1 s"):
            src.open()
        assert time.monotonic() - t0 < 15  # bounded by the timeout, not a timing test
        src.close()


def test_ctrl_c_before_a_stream_gave_a_frame_says_so(tmp_path: Path) -> None:
    """It read "no face found in 0 frames": as if the stream had been looked at."""
    import json

    js = tmp_path / "r.json"
    with socket.socket() as listener:  # accepts the connection, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/live.ts"
        proc = start_mesolive(
            "scan", url, "--json", str(js), "--models", "meso4-df", "--precision", "fp32"
        )  # a model that loads in a second or two
        time.sleep(5.0)  # models loaded, the stream still opening (its timeout is 10 s)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert out == f"{url}: ERROR: interrupted before it gave a frame\n"
    (entry,) = json.loads(js.read_text())["inputs"]
    assert entry["verdict"] == "error" and entry["interrupted"] and entry["frames"] == 0


def test_unreachable_stream_is_one_line_without_password() -> None:
    port = free_port()  # nothing listens there
    src = make_source(f"rtsp://alice:s3cret@127.0.0.1:{port}/cam")
    with pytest.raises(SourceError) as info:
        src.open()
    message = str(info.value)
    assert message == (
        f"rtsp://alice:***@127.0.0.1:{port}/cam: cannot open the stream: "
        f"connection refused, nothing listens on 127.0.0.1:{port}"
    )
    src.close()


@pytest.mark.parametrize("uri", ["tcp://[::1:5000", "rtsp://[::1/cam", "http://[::1/live.ts"])
def test_a_malformed_stream_address_is_one_line(uri: str) -> None:
    """An address Python's URL parser refuses (a bracket left open) ended in a traceback
    from the probe that says why a stream did not open."""
    with pytest.raises(SourceError) as info:
        StreamSource(uri, open_timeout=2.0).open()
    assert str(info.value).startswith(f"{uri}: cannot open the stream (")
    assert "\n" not in str(info.value)


class _Answers(http.server.BaseHTTPRequestHandler):
    """A web server that is not a stream server: errors, a page, a password, a redirect."""

    seen: ClassVar[list[tuple[str, str]]] = []  # (path, Authorization header) of each request

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        if self.path == "/page.html":
            self._answer(200, b"<html><body>not a video</body></html>", "text/html")
        elif self.path.startswith("/private"):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="cam"')
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/old.ts":
            self.send_response(302)
            self.send_header("Location", "/gone.ts")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/busy.ts":
            self.send_error(503)
        else:
            self.send_error(404)

    def _answer(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a real HTTP server that serves no video."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/live.ts", 'the server answered "404 Not Found"'),
        ("/old.ts", 'the server answered "404 Not Found"'),  # the redirect is followed
        ("/busy.ts", 'the server answered "503 Service Unavailable"'),
        (
            "/page.html",
            'the server answered "200 OK" but not with a video stream FFmpeg can read '
            "(Content-Type text/html)",
        ),
        (
            "/private.ts",
            'the server answered "401 Unauthorized"; '
            "it wants a user name and password (http://USER:PASSWORD@host/…)",
        ),
    ],
)
def test_an_http_stream_that_cannot_open_says_what_the_server_answered(
    web: str, path: str, why: str
) -> None:
    # It read "server unreachable, no answer within 10 s, or not a video stream"
    # for a wrong path as for a server that is down.
    src = StreamSource(web + path, open_timeout=5.0)
    with pytest.raises(SourceError) as info:
        src.open()
    assert str(info.value) == f"{web}{path}: cannot open the stream: {why}"


def test_a_refused_password_is_said_and_never_shown(web: str) -> None:
    url = web.replace("http://", "http://alice:s3cr%40t@") + "/private.ts?token=abc123"
    _Answers.seen.clear()
    with pytest.raises(SourceError) as info:
        StreamSource(url, open_timeout=5.0).open()
    shown = web.replace("http://", "http://alice:***@") + "/private.ts?token=***"
    assert str(info.value) == (
        f'{shown}: cannot open the stream: the server answered "401 Unauthorized"; '
        "the user name or password was refused"
    )
    # the probe asked as FFmpeg does: with the URL's password, decoded
    assert ("/private.ts?token=abc123", "Basic YWxpY2U6czNjckB0") in _Answers.seen


def test_an_http_stream_on_a_closed_port_or_an_unknown_host_says_so() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(SourceError) as info:
        StreamSource(f"http://127.0.0.1:{port}/live.ts", open_timeout=5.0).open()
    assert str(info.value) == (
        f"http://127.0.0.1:{port}/live.ts: cannot open the stream: "
        f"connection refused, nothing listens on 127.0.0.1:{port}"
    )
    # .invalid never resolves (RFC 2606); where the resolver itself is missing it fails too
    with pytest.raises(SourceError) as info:
        StreamSource("http://no-such-host.invalid/live.ts", open_timeout=5.0).open()
    assert re.fullmatch(
        r"http://no-such-host\.invalid/live\.ts: cannot open the stream: "
        r"the host name 'no-such-host\.invalid' does not resolve \(.+\)",
        str(info.value),
    )


def test_capture_thread_reports_a_failed_first_open() -> None:
    statuses: list[tuple[ReadStatus, str]] = []
    slot: LatestSlot[Frame] = LatestSlot()
    url = f"http://127.0.0.1:{free_port()}/none.ts"
    thread = CaptureThread(make_source(url), slot, on_status=lambda s, m: statuses.append((s, m)))
    thread.start()
    assert slot.take(20.0) is None  # closed, not timed out
    assert slot.closed
    thread.join(5)
    assert not thread.is_alive()
    assert statuses == [(ReadStatus.ERROR, thread.last_message)]
    assert "cannot open the stream" in thread.last_message


@needs_ffmpeg
@pytest.mark.slow
def test_scan_reports_an_outage_in_its_report_and_json(server: Server, tmp_path: Path) -> None:
    """``scan`` of a stream that drops mid-run: the outage is printed and in the JSON."""
    import io
    import json
    import threading

    from mesolive.commands.scan import print_report, scan_input, write_json
    from mesolive.pipeline.pipeline import FramePipeline, PipelineConfig

    url = server.url.replace("http://", "http://alice:s3cret@")
    config = PipelineConfig(models=("meso4-df",), every=10)
    reports = []
    with FramePipeline(config) as pipeline:
        scanning = threading.Thread(
            target=lambda: reports.append(scan_input(pipeline, url, max_frames=90, progress=False))
        )
        scanning.start()
        time.sleep(2.0)
        server.kill()
        time.sleep(1.0)
        server.start()
        scanning.join(60)
        assert not scanning.is_alive()
    (report,) = reports
    (outage,) = report.outages
    assert outage.recovered and outage.duration > 0.5
    assert report.error is None and report.frames + report.dropped == 90
    text = io.StringIO()
    print_report(report, text)
    assert re.search(r"source lost at \d+\.\d s for \d+\.\d s, ~\d+ frames lost", text.getvalue())
    js = tmp_path / "r.json"
    write_json(str(js), config, "onnxruntime-cpu", reports)
    (entry,) = json.loads(js.read_text())["inputs"]
    assert entry["outages"][0]["recovered"] is True and entry["outages"][0]["frames_lost"] >= 0
    assert "s3cret" not in text.getvalue() + js.read_text()


@needs_ffmpeg
@pytest.mark.slow
def test_a_live_scan_stopped_by_ctrl_c_keeps_its_outages(server: Server, tmp_path: Path) -> None:
    """Ctrl+C is how a live scan ends; it dropped every outage from the report and JSON,
    so a stream that kept dropping read as one that ran cleanly."""
    import json

    js = tmp_path / "r.json"
    proc = start_mesolive(
        "scan", server.url, "--models", "meso4-df", "--every", "5", "--json", str(js),
        "--csv", str(tmp_path / "r.csv"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while sum(p.stat().st_size for p in tmp_path.glob(".r.csv*")) < 2000:  # rows written
            assert time.monotonic() < deadline and proc.poll() is None, "the scan never started"
            time.sleep(0.1)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGSTOP)  # a pause shorter than the read timeout
        time.sleep(3.5)
        server.proc.send_signal(signal.SIGCONT)
        time.sleep(2.0)  # it flows again
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert "(interrupted)" in out and "source lost at" in out
    (entry,) = json.loads(js.read_text())["inputs"]
    assert entry["interrupted"] and len(entry["outages"]) == 1
    (outage,) = entry["outages"]
    assert outage["reason"] == GAP_REASON and outage["recovered"]
    # what the server held back came after the pause: late, not lost (and said so)
    assert outage["frames_late"] > outage["frames_lost"]
    assert f"{outage['frames_late']} came late in a burst" in out
