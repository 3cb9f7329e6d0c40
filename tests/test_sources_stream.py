"""Network streams against a real FFmpeg server on 127.0.0.1: read, drop, retry, stall."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mesolive.errors import SourceError
from mesolive.pipeline.capture import CaptureThread
from mesolive.pipeline.mailbox import LatestSlot
from mesolive.sources.registry import make_source
from mesolive.sources.stream import StreamSource
from mesolive.types import Frame, ReadStatus

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


@needs_ffmpeg
@pytest.mark.slow
def test_dropped_stream_is_retried_and_reported(server: Server) -> None:
    statuses: list[tuple[ReadStatus, str]] = []
    slot: LatestSlot[Frame] = LatestSlot()
    thread = CaptureThread(
        make_source(server.url), slot, on_status=lambda s, m: statuses.append((s, m))
    )
    thread.start()
    try:
        first = slot.take(10.0)
        assert first is not None, statuses
        server.kill()  # the stream drops mid-run
        dropped = wait_for(statuses, "stream dropped; retrying in 0.5 s", 10)
        assert dropped.startswith(server.url)
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


def test_unreachable_stream_is_one_line_without_password() -> None:
    port = free_port()  # nothing listens there
    src = make_source(f"rtsp://alice:s3cret@127.0.0.1:{port}/cam")
    with pytest.raises(SourceError) as info:
        src.open()
    message = str(info.value)
    assert message.startswith(f"rtsp://alice:***@127.0.0.1:{port}/cam: cannot open the stream")
    assert "s3cret" not in message and "\n" not in message
    src.close()


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
