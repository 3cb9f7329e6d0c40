"""CaptureThread on real sources: pacing, drops, end, stop, failures and retries."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mesolive.errors import SourceError
from mesolive.pipeline.capture import GAP_REASON, CaptureThread
from mesolive.pipeline.mailbox import LatestSlot
from mesolive.sources.base import FrameSource
from mesolive.sources.registry import make_source
from mesolive.types import Frame, ReadStatus

HAMILTON = ("videos", "real", "hamilton_clip.mp4")  # 275 frames


@pytest.fixture
def warnings_logged(warnings_from: Callable[[str], list[str]]) -> list[str]:
    return warnings_from("mesolive.pipeline.capture")


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


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.01)


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


class PacedCamera(FrameSource):
    """A live test source whose frames are 2×2 black images numbered from 0, stamped when read."""

    is_live = True
    index = 0

    def _next(self) -> tuple[ReadStatus, Frame | None, str]:
        frame = Frame(self.index, np.zeros((2, 2, 3), np.uint8), time.monotonic(), self.uri)
        self.index += 1
        return ReadStatus.OK, frame, ""

    def close(self) -> None:
        pass


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
        self.index += 1
        if self.index == 3:
            return ReadStatus.ERROR, None, "flaky: unplugged"
        if self.index > 6:
            time.sleep(timeout)
            return ReadStatus.TIMEOUT, None, ""
        return ReadStatus.OK, Frame(self.index, np.zeros((2, 2, 3), np.uint8), 0.0), ""

    def close(self) -> None:
        pass


def test_live_source_reconnects_with_doubling_backoff(warnings_logged: list[str]) -> None:
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
    # The outage is a record and two warnings; the retries in between are detail (INFO).
    (outage,) = thread.outages
    assert outage.reason == "unplugged" and outage.recovered
    assert outage.frames_lost is None  # the source does not know its frame rate
    assert 0 < outage.start < outage.end and outage.duration < 10
    # a source that does not name its kind is a "source", not a "stream"
    assert warnings_logged[0] == "flaky: source lost, reconnecting… (unplugged)"
    assert re.fullmatch(r"flaky: reconnected after \d+\.\d s", warnings_logged[1])
    assert len(warnings_logged) == 2


def test_an_outage_still_going_at_stop_is_recorded_as_such() -> None:
    class QuickCapture(CaptureThread):
        BACKOFF_START = 0.01
        BACKOFF_MAX = 0.02

    rec = Recorder()
    thread = QuickCapture(FlakyLiveSource(bad_opens=10**6), LatestSlot(), on_status=rec)
    thread.start()
    wait_until(lambda: len(rec.calls) > 4)  # gone, and every reopening fails
    assert thread.outages == ()  # not over yet
    assert thread.stop()
    (outage,) = thread.outages
    assert not outage.recovered and outage.reason == "unplugged"
    assert 0 < outage.start < outage.end


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


def test_watchdog_restarts_a_live_source_stuck_in_read(warnings_logged: list[str]) -> None:
    release = threading.Event()
    opened: list[int] = []

    class HangingCamera(PacedCamera):
        """50 fps; its first copy hangs in read after 3 frames, as a driver stuck in an ioctl."""

        uri = "hang:"
        fps = 50.0

        def __init__(self) -> None:
            self.copy = -1
            self.index = 0

        def open(self) -> None:
            self.copy = len(opened)
            opened.append(self.copy)

        def read(self, timeout: float) -> tuple[ReadStatus, Frame | None, str]:
            if self.copy == 0 and self.index == 3:
                release.wait()  # returns only when the test lets it
                return ReadStatus.TIMEOUT, None, ""
            time.sleep(1 / self.fps)
            return self._next()

    rec = Recorder()
    slot: LatestSlot[Frame] = LatestSlot()
    thread = CaptureThread(HangingCamera(), slot, on_status=rec, stall_timeout=0.5)
    thread.start()
    frames: list[Frame] = []
    try:
        deadline = time.monotonic() + 20
        while not frames or frames[-1].index < 40:
            assert time.monotonic() < deadline, rec.calls
            frame = slot.take(0.5)
            if frame is not None:
                frames.append(frame)
        assert opened == [0, 1]  # a fresh copy was opened; the stuck one never closed
        assert thread.restarts == 1 and thread.abandoned == 1
    finally:
        release.set()
    wait_until(lambda: thread.abandoned == 0)  # it returned, saw it was left behind, and ended
    assert thread.stop()
    restart = "hang: no frame for 0.5 s (the source stopped answering); restarting the capture"
    assert rec.calls[1:3] == [
        (ReadStatus.ERROR, restart),
        (ReadStatus.OK, "reconnected: capturing hang: at 50 fps"),
    ]
    (outage,) = thread.outages
    assert outage.reason == "the source stopped answering" and outage.recovered
    assert outage.duration >= 0.5  # the watchdog waited for its limit
    assert outage.frames_lost == max(0, round(outage.duration * 50) - 1) >= 24
    # numbering goes on across the copies, with a gap for the frames lost
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))
    assert [i for i in indices if i <= 2][-1] == 2  # the last frame before the hang
    after = next(i for i in indices if i > 2)
    assert after >= 3 + outage.frames_lost
    assert warnings_logged[0] == restart
    assert re.fullmatch(r"hang: reconnected after \d+\.\d s, \d+ frames lost", warnings_logged[1])


def test_watchdog_gives_up_on_a_stuck_file() -> None:
    release = threading.Event()

    class StuckFile(FrameSource):
        """A file on a mount that stopped answering: its first read never returns."""

        uri = "stuck.mp4"

        def open(self) -> None:
            pass

        def read(self, timeout: float) -> tuple[ReadStatus, Frame | None, str]:
            release.wait()
            return ReadStatus.END, None, "stuck.mp4: end of file"

        def close(self) -> None:
            pass

    rec = Recorder()
    slot: LatestSlot[Frame] = LatestSlot()
    thread = CaptureThread(StuckFile(), slot, on_status=rec, stall_timeout=0.3)
    thread.start()
    try:
        assert slot.take(20) is None and slot.closed  # a file is not reopened: it ends
        thread.join(10)
        assert not thread.is_alive() and thread.abandoned == 1 and thread.restarts == 0
    finally:
        release.set()
    wait_until(lambda: thread.abandoned == 0)
    give_up = "stuck.mp4: no frame for 0.3 s (the source stopped answering); giving up"
    assert rec.calls == [(ReadStatus.OK, "capturing stuck.mp4"), (ReadStatus.ERROR, give_up)]


class StallingCamera(PacedCamera):
    """50 fps, silent for ``stall`` s after 10 frames (reads time out, nothing fails).

    With ``holds_back`` the frames of the silence then come at once, as a
    stream server that stalled sends what it held back (tested for real in
    test_sources_stream against FFmpeg); without, they are gone, as a camera's.
    """

    uri = "stall:"
    fps = 50.0

    def __init__(self, stall: float, *, holds_back: bool) -> None:
        self.stall, self.holds_back = stall, holds_back
        self.index = 0
        self.silent_until: float | None = None
        self.backlog = 0

    def open(self) -> None:
        pass

    def read(self, timeout: float) -> tuple[ReadStatus, Frame | None, str]:
        now = time.monotonic()
        if self.index == 10 and self.silent_until is None:
            self.silent_until = now + self.stall
        if self.silent_until is not None and now < self.silent_until:
            time.sleep(min(timeout, self.silent_until - now))
            return ReadStatus.TIMEOUT, None, ""
        if self.silent_until is not None and self.backlog == 0 and self.holds_back:
            self.backlog = round(self.stall * self.fps)
            self.holds_back = False
        if self.backlog:
            self.backlog -= 1  # held back: no wait
        else:
            time.sleep(1 / self.fps)
        return self._next()


@pytest.mark.parametrize("holds_back", [True, False])
def test_frames_held_back_in_a_silence_are_late_not_lost_and_counted_once(
    holds_back: bool, warnings_logged: list[str]
) -> None:
    """After a stall, the burst the slot overwrote was counted in the drops and again
    in the silence's frames lost: the same frames twice in scan's report."""
    slot: LatestSlot[Frame] = LatestSlot()
    thread = CaptureThread(StallingCamera(2.5, holds_back=holds_back), slot)
    thread.start()
    taken = 0
    try:
        deadline = time.monotonic() + 30
        while not thread.outages:  # recorded once the frames held back have come
            assert time.monotonic() < deadline, "the silence was not recorded"
            taken += slot.take(0.5) is not None
    finally:
        assert thread.stop()
    taken += slot.take(0) is not None
    (outage,) = thread.outages
    assert outage.reason == GAP_REASON and outage.recovered
    nominal = max(0, round(outage.duration * 50) - 1)  # frames the silence should have held
    assert outage.frames_lost is not None
    assert outage.frames_lost + outage.frames_late == nominal
    assert thread.frames_read == taken + thread.drops  # every frame read: analysed or dropped
    if holds_back:
        # the 125 frames held back came: late, not lost; the slot kept the newest of them
        assert outage.frames_late >= nominal - 10 and outage.frames_lost <= 10
        assert thread.drops > 60  # most were overwritten before they could be taken
        assert thread.drops + outage.frames_lost <= nominal + 5  # each frame once
        # missed at any speed: the "auto" interval must not skip frames for them
        assert thread.drops - thread.drops_behind > 60 and thread.drops_behind <= 3
        assert re.fullmatch(
            r"stall: no frames for \d\.\d s, \d+ frames lost, \d+ came late in a burst",
            warnings_logged[0],
        )
    else:  # a camera's frames missed are gone: lost, and none dropped for them
        assert outage.frames_late == 0 and outage.frames_lost == nominal >= 100
        assert thread.drops < 5 and thread.drops_behind == thread.drops
        assert re.fullmatch(r"stall: no frames for \d\.\d s, \d+ frames lost", warnings_logged[0])


def test_a_consumer_slower_than_the_source_after_a_burst_is_behind() -> None:
    """The frames after a burst keep its lead over the source's clock: every drop for a
    second after it was taken for the burst's, so the auto interval never saw them."""
    slot: LatestSlot[Frame] = LatestSlot()
    thread = CaptureThread(StallingCamera(2.0, holds_back=True), slot)
    thread.start()

    def take_slowly() -> None:  # about 30 frames a second, against the camera's 50
        if slot.take(0.5) is not None:
            time.sleep(0.033)

    try:
        deadline = time.monotonic() + 30
        while not thread.outages:
            assert time.monotonic() < deadline, "the silence was not recorded"
            take_slowly()
        behind = thread.drops_behind
        for _ in range(30):
            take_slowly()
    finally:
        assert thread.stop()
    (outage,) = thread.outages
    assert thread.drops - thread.drops_behind <= outage.frames_late  # the burst's own frames
    assert thread.drops_behind - behind >= 10  # about 20 a second once it was over
