"""CaptureThread on real sources: pacing, drops, end, stop, failures and retries."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mesolive.errors import SourceError
from mesolive.pipeline.capture import CaptureThread
from mesolive.pipeline.mailbox import LatestSlot
from mesolive.sources.base import FrameSource
from mesolive.sources.registry import make_source
from mesolive.types import Frame, ReadStatus

HAMILTON = ("videos", "real", "hamilton_clip.mp4")  # 275 frames


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[ReadStatus, str]] = []

    def __call__(self, status: ReadStatus, message: str) -> None:
        self.calls.append((status, message))

    @property
    def statuses(self) -> list[ReadStatus]:
        return [s for s, _ in self.calls]


def drain(slot: LatestSlot[Frame], delay: float = 0.0, timeout: float = 20.0) -> list[Frame]:
    """Take frames until the slot closes; ``delay`` after each imitates a slow consumer."""
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = slot.take(0.5)
        if frame is None:
            if slot.closed:
                return frames
            continue
        frames.append(frame)
        if delay:
            time.sleep(delay)
    pytest.fail("the slot never closed")


def test_paced_source_plays_at_its_rate_then_ends() -> None:
    rec = Recorder()
    slot: LatestSlot[Frame] = LatestSlot()
    source = make_source("test:?faces=1&size=320x240&fps=20&frames=12")
    thread = CaptureThread(source, slot, on_status=rec)
    assert thread.name == "mesolive-capture"
    t0 = time.monotonic()
    thread.start()
    frames = drain(slot)
    elapsed = time.monotonic() - t0
    assert thread.stop()
    assert [f.index for f in frames] == list(range(12))
    assert thread.frames_read == 12 and thread.drops == 0
    # 12 frames at 20 fps span 11 intervals; only a lower bound (a busy machine is slower).
    assert elapsed >= 11 / 20 * 0.9
    assert frames[-1].t_capture - frames[0].t_capture >= 11 / 20 * 0.9
    assert rec.statuses == [ReadStatus.OK, ReadStatus.END]
    assert rec.calls[0][1] == "capturing test:?faces=1&size=320x240&fps=20&frames=12 at 20 fps"
    assert thread.last_status is ReadStatus.END and "end after 12 frames" in thread.last_message
    assert source.read(0.1)[0] is ReadStatus.ERROR  # closed by the thread


def test_unpaced_file_with_a_slow_consumer_drops_and_counts(shared: Path) -> None:
    slot: LatestSlot[Frame] = LatestSlot()
    thread = CaptureThread(make_source(str(shared.joinpath(*HAMILTON))), slot, pace=False)
    thread.start()
    frames = drain(slot, delay=0.01)
    assert thread.stop()
    assert thread.frames_read == 275
    assert thread.drops > 0
    assert len(frames) + thread.drops == 275
    assert frames[-1].index == 274  # the last frame survives the end of the file
    indices = [f.index for f in frames]
    assert indices == sorted(indices)
    assert frames[-1].pts == pytest.approx(274 / 29.97, abs=1e-3)


def test_max_frames_ends_the_capture() -> None:
    rec = Recorder()
    slot: LatestSlot[Frame] = LatestSlot()
    thread = CaptureThread(
        make_source("test:?faces=0&size=160x120"), slot, pace=False, on_status=rec, max_frames=7
    )
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and slot.closed
    assert thread.frames_read == 7
    assert rec.calls[-1] == (ReadStatus.END, "stopped after 7 frames")


def test_stop_wakes_a_paced_wait_and_leaves_the_slot_open() -> None:
    slot: LatestSlot[Frame] = LatestSlot()
    thread = CaptureThread(make_source("test:?faces=1&size=160x120&fps=0.1"), slot)
    thread.start()
    assert slot.take(10) is not None  # frame 0 at once; frame 1 is due in 10 s
    t0 = time.monotonic()
    assert thread.stop(timeout=5.0)
    assert time.monotonic() - t0 < 5.0
    assert not slot.closed and thread.frames_read == 1


def test_stop_before_start() -> None:
    thread = CaptureThread(make_source("test:"), LatestSlot())
    assert thread.stop()


def test_failed_open_reports_once_and_closes_the_slot(tmp_path: Path) -> None:
    for uri, fragment in (
        (str(tmp_path / "missing.mp4"), "no such file or folder"),
        ("webcam:7", "webcam:7"),
    ):
        rec = Recorder()
        slot: LatestSlot[Frame] = LatestSlot()
        thread = CaptureThread(make_source(uri), slot, on_status=rec)
        thread.start()
        assert slot.take(10) is None and slot.closed
        thread.join(5)
        assert not thread.is_alive()
        assert rec.statuses == [ReadStatus.ERROR]
        assert fragment in rec.calls[0][1] and "\n" not in rec.calls[0][1]


def test_a_file_that_fails_midway_is_not_retried(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    rec = Recorder()
    slot: LatestSlot[Frame] = LatestSlot()
    thread = CaptureThread(make_source(str(tmp_path)), slot, on_status=rec)
    thread.start()
    assert drain(slot) == []
    thread.join(5)
    assert rec.statuses == [ReadStatus.OK, ReadStatus.ERROR]
    assert "none of the images can be read" in rec.calls[-1][1]


def test_a_failing_status_callback_does_not_stop_capture() -> None:
    def explode(status: ReadStatus, message: str) -> None:
        raise RuntimeError("callback bug")

    slot: LatestSlot[Frame] = LatestSlot()
    thread = CaptureThread(
        make_source("test:?faces=0&size=160x120&frames=3"), slot, pace=False, on_status=explode
    )
    thread.start()
    assert len(drain(slot)) >= 1
    thread.join(5)
    assert thread.frames_read == 3 and thread.last_status is ReadStatus.END


class FlakyLiveSource(FrameSource):
    """A live source whose reads fail once, and whose reopening fails ``bad_opens`` times.

    Stands in for a camera that is unplugged and plugged back: the real
    cases (a stream that drops, a window that closes) are tested against a
    real FFmpeg server and a real X server; this one checks the backoff.
    """

    is_live = True
    uri = "flaky:"
    fps = None

    def __init__(self, bad_opens: int) -> None:
        self.opens = 0
        self.bad_opens = bad_opens
        self.index = 0

    def open(self) -> None:
        self.opens += 1
        if 1 < self.opens <= 1 + self.bad_opens:
            raise SourceError(f"flaky: open {self.opens} failed")

    def read(self, timeout: float) -> tuple[ReadStatus, Frame | None, str]:
        import numpy as np

        self.index += 1
        if self.index == 3:
            return ReadStatus.ERROR, None, "flaky: unplugged"
        if self.index > 6:
            time.sleep(timeout)
            return ReadStatus.TIMEOUT, None, ""
        return ReadStatus.OK, Frame(self.index, np.zeros((2, 2, 3), np.uint8), 0.0), ""

    def close(self) -> None:
        pass


def test_live_source_reconnects_with_doubling_backoff() -> None:
    class QuickCapture(CaptureThread):
        BACKOFF_START = 0.01
        BACKOFF_MAX = 0.04

    rec = Recorder()
    slot: LatestSlot[Frame] = LatestSlot()
    source = FlakyLiveSource(bad_opens=4)
    thread = QuickCapture(source, slot, on_status=rec)
    thread.start()
    deadline = time.monotonic() + 10
    while thread.frames_read < 5:
        assert time.monotonic() < deadline, rec.calls
        time.sleep(0.01)
    assert thread.stop()
    assert not slot.closed
    messages = [m for _, m in rec.calls]
    assert messages == [
        "capturing flaky:",
        "flaky: unplugged; retrying in 0.01 s",
        "flaky: open 2 failed; retrying in 0.02 s",
        "flaky: open 3 failed; retrying in 0.04 s",
        "flaky: open 4 failed; retrying in 0.04 s",
        "flaky: open 5 failed; retrying in 0.04 s",
        "reconnected: capturing flaky:",
    ]
    assert source.opens == 6


def test_stop_from_the_status_callback() -> None:
    slot: LatestSlot[Frame] = LatestSlot()
    threads: list[CaptureThread] = []

    def stop_at_once(status: ReadStatus, message: str) -> None:
        assert threads[0].stop() is False  # cannot join itself; ends right after

    thread = CaptureThread(make_source("test:?faces=0&size=160x120"), slot, on_status=stop_at_once)
    threads.append(thread)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert thread.frames_read <= 1
