"""The capture thread: owns a FrameSource and feeds a latest-frame slot.

:class:`CaptureThread` supervises; a reader thread opens, reads and closes
the source. A reader stuck in a call that never returns cannot be killed:
the supervisor's watchdog leaves it behind and, for a live source, opens a
fresh copy of the source in a new reader (as Frigate restarts a camera's
capture process that stopped answering).
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import logging
import threading
import time
import weakref
from collections.abc import Callable

from mesolive.errors import MesoliveError
from mesolive.pipeline.mailbox import LatestSlot
from mesolive.redact import redact
from mesolive.sources.base import FrameSource
from mesolive.types import Frame, Outage, ReadStatus

log = logging.getLogger(__name__)

StatusCallback = Callable[[ReadStatus, str], None]

GAP_REASON = "no frames came, though the source did not fail"
"""The :attr:`~mesolive.types.Outage.reason` of a silence (:attr:`CaptureThread.GAP`)."""

_running: weakref.WeakSet[CaptureThread] = weakref.WeakSet()


@atexit.register
def _stop_running_threads() -> None:
    """Stop capture threads nobody stopped, before the interpreter kills daemon threads.

    A daemon thread killed inside OpenCV's C++ code aborts the process
    ("FATAL: exception not rethrown"); atexit runs before that happens.
    """
    for thread in list(_running):
        thread.stop(timeout=1.0)


class CaptureThread(threading.Thread):
    """Reads ``source`` and puts each frame into ``slot``, off the caller's thread.

    The source is opened, read and closed in one reader thread, so handles
    bound to a thread (mss, X11) live there; this thread supervises it.
    Frames go into the slot as they come; one the consumer has not taken yet
    is overwritten and counted in :attr:`drops`.

    Parameters
    ----------
    source
        An unopened source (``make_source``); closed when the capture ends.
        It is deep-copied here, so that the watchdog can open a fresh one.
    slot
        Where frames go. Closed when the source ends, fails for good, or
        cannot be opened, or after ``max_frames``; **not** closed by
        :meth:`stop`, so the caller decides whether the consumer goes on.
    pace
        Play non-live sources (files, stills, ``test:``) at their own frame
        rate, following ``Frame.pts``; the frame's ``t_capture`` is then the
        time it was released. Without it they are read as fast as possible
        and a slower consumer drops frames (a scan that must see every frame
        reads the source itself, without this thread).
    on_status
        Called from a capture thread with ``(status, message)``: ``OK``
        after each successful (re)open, ``ERROR`` for each failure and retry
        (``"…; retrying in 2 s"``), ``END`` at the end. Exceptions it raises
        are logged and ignored.
    max_frames
        Stop after this many frames, as if the source had ended.
    stall_timeout
        Seconds (at least three frame intervals of the source) a reader may
        go without a frame, a finished open attempt or a retry wait before
        the watchdog acts; None: :attr:`STALL_TIMEOUT`.

    Live sources (cameras, screens, windows, streams) that fail while
    running are closed and reopened with a backoff that doubles from
    :attr:`BACKOFF_START` to :attr:`BACKOFF_MAX` seconds and resets after a
    frame arrives; they never end by themselves. Each time one is cut off is
    logged at WARNING as it begins ("``URI: stream lost, reconnecting…``",
    worded by the source's :attr:`~mesolive.sources.base.FrameSource.noun`:
    "``window lost``", "``camera lost``")
    and ends ("``URI: reconnected after 3.2 s, 96 frames lost``") and kept
    as an :class:`~mesolive.types.Outage` in :attr:`outages`; so is a
    silence of :attr:`GAP` s or more without a failure. A source that was
    silent may then send what it held back, in a burst faster than its frame
    rate (a stream server that stalled): those frames are read, not lost, so
    they are the outage's ``frames_late``, not its ``frames_lost``, and the
    ones overwritten in the slot are in :attr:`drops` only (not in
    :attr:`drops_behind`: no consumer could take them). The silence is
    logged once the burst is over (its lead over the source's clock has not
    grown for :attr:`CATCH_UP` s): "``URI: no frames for 3.2 s, 2 frames lost, 94 came
    late in a burst``". A failed first open, or any failure of a non-live
    source, ends the capture.

    The watchdog: a reader that shows no progress for ``stall_timeout`` s
    (stuck in ``open`` or ``read``) is left behind as a daemon (it exits
    quietly if its call ever returns; :attr:`abandoned` counts those still
    stuck). For a live source a copy of the source is then opened in a new
    reader (:attr:`restarts`), its frames numbered on from the old ones;
    a non-live source, or more than :attr:`MAX_STUCK` readers stuck at once,
    ends the capture with ``ERROR``.
    """

    READ_TIMEOUT = 0.1  # seconds per read, so stop() is noticed quickly
    BACKOFF_START = 0.5
    BACKOFF_MAX = 10.0
    MAX_LAG = 0.5  # a paced source this far behind its clock restarts the clock
    STALL_TIMEOUT = 20.0  # above a stream's open timeout (10 s) and the longest backoff
    MAX_STUCK = 3
    GAP = 2.0  # seconds without a frame from a live source that did not fail: an outage
    CATCH_UP = 1.0  # seconds in which a burst's lead over the clock did not grow that end it

    def __init__(
        self,
        source: FrameSource,
        slot: LatestSlot[Frame],
        *,
        pace: bool = True,
        on_status: StatusCallback | None = None,
        max_frames: int | None = None,
        log_final_error: bool = True,
        stall_timeout: float | None = None,
    ) -> None:
        # A daemon, so that a driver stuck in a blocking read never keeps the
        # process alive; stop() still joins it in the normal case.
        super().__init__(name="mesolive-capture", daemon=True)
        self.source = source
        self.slot = slot
        self.pace = pace
        self.on_status = on_status
        self.max_frames = max_frames
        # False when the owner reports last_message itself; retries are still logged
        self.log_final_error = log_final_error
        self.stall_timeout = float(stall_timeout or self.STALL_TIMEOUT)
        self.started_at: float | None = None  # time.time() when the capture started
        try:
            self._template: FrameSource | None = copy.deepcopy(source)
        except (TypeError, copy.Error):  # holds a handle before open(): cannot restart
            self._template = None
        self._stop_event = threading.Event()
        self._playing = threading.Event()  # cleared: a file holds its place (set_paused)
        self._playing.set()
        self._lock = threading.Lock()  # outage state, written by readers and supervisor
        self._frames_read = 0
        self._last_status: ReadStatus | None = None
        self._last_message = ""
        self._t0 = time.monotonic()
        self._last_frame_at: float | None = None
        self._last_index = -1
        self._cut_off: tuple[float, str, float | None] | None = None  # (start, reason, fps)
        self._outages: tuple[Outage, ...] = ()
        self._catch_up: _CatchUp | None = None  # a silence whose frames may still come late
        self._burst_drops = 0
        self._restarts = 0
        self._left_behind: list[_Reader] = []

    # -- public -----------------------------------------------------------------

    @property
    def frames_read(self) -> int:
        """Frames read from the source and put into the slot."""
        return self._frames_read

    @property
    def drops(self) -> int:
        """Frames overwritten in the slot before the consumer took them."""
        return self.slot.drops

    @property
    def drops_behind(self) -> int:
        """Of :attr:`drops`, those the consumer missed because it was behind the source.

        Not the frames overwritten by one that came late in a burst: a source
        that sends what it held back in a silence sends it faster than its
        frame rate, so a consumer that keeps up with the source still misses
        most of it.
        """
        return self.slot.drops - self._burst_drops

    @property
    def last_status(self) -> ReadStatus | None:
        """The last status reported through ``on_status`` (None before any)."""
        return self._last_status

    @property
    def last_message(self) -> str:
        return self._last_message

    @property
    def outages(self) -> tuple[Outage, ...]:
        """Every time the live source was cut off, oldest first; one still going is
        added (``recovered`` False) when the capture ends, a silence once the frames
        it held back have come (:attr:`CATCH_UP` s after the last)."""
        return self._outages

    @property
    def note(self) -> str:
        """The source's :attr:`~mesolive.sources.base.FrameSource.note` since it last
        opened ('' for none): a caveat about what is captured, for the user to see."""
        return self.source.note

    @property
    def restarts(self) -> int:
        """Readers the watchdog replaced because they stopped answering."""
        return self._restarts

    @property
    def abandoned(self) -> int:
        """Readers left behind by the watchdog that are still stuck in the source."""
        return sum(r.is_alive() for r in self._left_behind)

    def set_paused(self, paused: bool) -> None:
        """Hold a file (or folder) at its place until resumed; a live source is not held.

        A camera, screen or stream cannot wait: it goes on, and what it
        shows meanwhile is not read back later. A file can, and a user who
        pauses it expects to resume where they paused, not to find that it
        played on unseen (and ended). Its pace starts again from the next
        frame after the resume.
        """
        if self.source.is_live:
            return
        if paused:
            self._playing.clear()
        else:
            self._playing.set()

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the capture to end, wait up to ``timeout`` s; True when it has ended."""
        self._stop_event.set()
        self._playing.set()  # wakes a paused reader at once
        if self.ident is None:  # never started
            return True
        me = threading.current_thread()
        if me is self or (isinstance(me, _Reader) and me.owner is self):
            return False  # called from on_status: ends after it returns
        self.join(timeout)
        if self.is_alive():
            log.warning(
                "capture of %s did not stop within %g s (blocked in the source's read)",
                redact(self.source.uri),
                timeout,
            )
            return False
        return True

    # -- supervisor ----------------------------------------------------------------

    def run(self) -> None:
        _running.add(self)
        self._t0 = time.monotonic()
        self.started_at = time.time()
        try:
            reader: _Reader | None = self._spawn(self.source, restart=False)
            while reader is not None:
                reader.join(min(1.0, self.stall_timeout / 4))
                if not reader.is_alive():
                    break
                if self._stop_event.is_set():
                    continue  # the reader ends by itself; wait for it
                silent = time.monotonic() - reader.alive_at
                if silent >= self._stall_limit():
                    reader = self._stalled(reader)
        finally:
            self._caught_up()
            self._outage_ends(time.monotonic(), recovered=False)
            _running.discard(self)

    def _spawn(self, source: FrameSource, *, restart: bool) -> _Reader:
        reader = _Reader(self, source, restart=restart)
        reader.start()
        return reader

    def _stall_limit(self) -> float:
        fps = self.source.fps
        return max(self.stall_timeout, 3.0 / fps) if fps else self.stall_timeout

    def _stalled(self, reader: _Reader) -> _Reader | None:
        """Leave ``reader`` behind; its replacement, or None when the capture ends."""
        reader.quit.set()
        self._left_behind.append(reader)
        what = _about(
            self.source.uri,
            f"no frame for {self._stall_limit():g} s (the source stopped answering)",
        )
        stuck = self.abandoned
        if not self.source.is_live or self._template is None:
            self._finish(ReadStatus.ERROR, f"{what}; giving up")
            return None
        if stuck > self.MAX_STUCK:
            self._finish(ReadStatus.ERROR, f"{what}; {stuck} readers stuck, giving up")
            return None
        self._restarts += 1
        self._report(ReadStatus.ERROR, f"{what}; restarting the capture", level=logging.WARNING)
        self._outage_begins("the source stopped answering")
        self.source = copy.deepcopy(self._template)
        return self._spawn(self.source, restart=True)

    # -- shared by the readers -----------------------------------------------------

    def _deliver(self, reader: _Reader, frame: Frame) -> bool:
        """Put a frame of ``reader`` into the slot; False when the reader must end."""
        if reader.quit.is_set():
            return False
        now = time.monotonic()
        reader.alive_at = now
        late = self._count_late(now)
        outage = self._outage_ends(now, recovered=True)
        if outage is not None:
            lost = f", {outage.frames_lost} frames lost" if outage.frames_lost is not None else ""
            log.warning(
                "%s", _about(self.source.uri, f"reconnected after {outage.duration:.1f} s{lost}")
            )
        else:
            self._gap_ended(now)
        if reader.index_offset is None:  # a fresh copy of the source counts from 0 again
            skipped = (outage.frames_lost or 0) if outage is not None else 0
            reader.index_offset = self._last_index + 1 + skipped - frame.index
        if reader.index_offset:
            frame = dataclasses.replace(frame, index=frame.index + reader.index_offset)
        self._last_index = frame.index
        self._last_frame_at = now
        if self.slot.put(frame) and late:
            self._burst_drops += 1
        self._frames_read += 1
        if self.max_frames is not None and self._frames_read >= self.max_frames:
            self._finish(ReadStatus.END, f"stopped after {self._frames_read} frames")
            return False
        return True

    def _source_lost(self, message: str) -> None:
        """A live source failed: the outage begins (unless it already has)."""
        reason = redact(message).removeprefix(_about(self.source.uri, ""))
        if self._outage_begins(reason):
            lost = f"{self.source.noun} lost, reconnecting… ({reason})"
            log.warning("%s", _about(self.source.uri, lost))

    def _gap_ended(self, now: float) -> None:
        """Record a pause of a live source that never failed, if ``now`` ends one.

        A stream whose server stalls for less than its read timeout, or a
        camera that stops delivering for a while, reports no error: its reads
        just return nothing. A silence of :attr:`GAP` s or more (or 5 frame
        intervals, for a slower source) is kept as an outage all the same,
        since nothing in it was analysed. It is recorded and logged once the
        frames the source held back meanwhile, if any, have come
        (:meth:`_count_late`).
        """
        last, fps = self._last_frame_at, self.source.fps
        if not self.source.is_live or last is None:
            return
        if now - last < max(self.GAP, 5.0 / fps if fps else 0.0):
            return
        if not self._outage_begins(GAP_REASON):  # the watchdog began one meanwhile
            return
        gap = self._outage_ends(now, recovered=True, keep=False)
        if gap is None:
            return
        with self._lock:
            if gap.frames_lost and fps:
                self._catch_up = _CatchUp(gap, fps, now, now)
                return
            self._outages = (*self._outages, gap)
        self._log_gap(gap)

    def _count_late(self, now: float) -> bool:
        """Count a frame that came after a silence; True when it came late, in the burst.

        A server that stalled, then sends what it held back, delivers the
        silence's frames now, faster than its frame rate: each such frame
        puts the stream further ahead of the source's clock. The frames after
        the burst keep that lead but do not grow it; they are on time. The
        count ends (and the silence gets it) once the lead has not grown for
        :attr:`CATCH_UP` s.
        """
        with self._lock:
            c = self._catch_up
            if c is None:
                return False
            if now - c.grew_at < self.CATCH_UP:
                c.frames += 1
                ahead = min(int(c.frames - (now - c.end) * c.fps), c.outage.frames_lost or 0)
                if ahead <= c.late:
                    return False
                c.late, c.grew_at = ahead, now
                return True
        self._caught_up()
        return False

    def _caught_up(self) -> None:
        """The silence being caught up on, if any, recorded with its late frames and logged."""
        with self._lock:
            c, self._catch_up = self._catch_up, None
            if c is None:
                return
            lost = (c.outage.frames_lost or 0) - c.late
            gap = dataclasses.replace(c.outage, frames_lost=lost, frames_late=c.late)
            self._outages = (*self._outages, gap)
        self._log_gap(gap)

    def _log_gap(self, gap: Outage) -> None:
        lost = f", {gap.frames_lost} frames lost" if gap.frames_lost is not None else ""
        late = f", {gap.frames_late} came late in a burst" if gap.frames_late else ""
        log.warning(
            "%s", _about(self.source.uri, f"no frames for {gap.duration:.1f} s{lost}{late}")
        )

    def _outage_begins(self, reason: str) -> bool:
        self._caught_up()  # a burst after an earlier silence is over by now
        with self._lock:
            if self._cut_off is not None:
                return False
            start = self._last_frame_at if self._last_frame_at is not None else time.monotonic()
            self._cut_off = (start, reason, self.source.fps)
            return True

    def _outage_ends(self, now: float, *, recovered: bool, keep: bool = True) -> Outage | None:
        """The outage going on, ended at ``now`` and (``keep``) added to :attr:`outages`."""
        with self._lock:
            if self._cut_off is None:
                return None
            start, reason, fps = self._cut_off
            self._cut_off = None
            fps = fps or self.source.fps
            # the frames between the last one before and the first one after
            lost = max(0, round((now - start) * fps) - 1) if fps else None
            outage = Outage(start - self._t0, now - self._t0, lost, reason, recovered)
            if keep:
                self._outages = (*self._outages, outage)
            return outage

    def _opened_message(self) -> str:
        fps = f" at {self.source.fps:g} fps" if self.source.fps else ""
        note = f" ({self.source.note})" if self.source.note else ""
        return f"capturing {redact(self.source.uri)}{fps}{note}"

    def _finish(self, status: ReadStatus, message: str) -> None:
        self._report(status, message, final=True)
        self.slot.close()

    def _report(
        self, status: ReadStatus, message: str, *, final: bool = False, level: int | None = None
    ) -> None:
        self._last_status = status
        self._last_message = message
        if level is None:
            if status is ReadStatus.ERROR and final:
                level = logging.WARNING if self.log_final_error else logging.DEBUG
            else:  # retries are detail: the outage itself is logged at WARNING
                level = logging.INFO if status is ReadStatus.ERROR else logging.DEBUG
        log.log(level, "%s", message)
        if self.on_status is None:
            return
        try:
            self.on_status(status, message)
        except Exception:
            log.exception("on_status callback failed")


@dataclasses.dataclass
class _CatchUp:
    """Frames counted after a silence (``outage``, which ended at ``end``), to tell late ones."""

    outage: Outage
    fps: float
    end: float  # monotonic: the first frame after the silence
    grew_at: float  # when ``late`` last grew
    frames: int = 0  # frames since the first one
    late: int = 0  # the most frames ahead of the source's clock so far


def _about(uri: str, text: str) -> str:
    """``"URI: text"`` with the password redacted, one colon after a URI such as ``test:``."""
    uri = redact(uri)
    return f"{uri} {text}" if uri.endswith(":") else f"{uri}: {text}"


class _Reader(threading.Thread):
    """Opens, reads and closes one source for a :class:`CaptureThread`, all in this thread.

    ``alive_at`` (monotonic) moves on with every frame, finished open
    attempt and slice of a wait: the supervisor's watchdog reads it. Once
    ``quit`` is set (left behind) the reader reports nothing more and ends
    as soon as its current call returns.
    """

    WAIT_SLICE = 0.25  # seconds; waits are cut so that progress shows and quit is noticed

    def __init__(self, owner: CaptureThread, source: FrameSource, *, restart: bool) -> None:
        super().__init__(name="mesolive-capture-read", daemon=True)
        self.owner = owner
        self.source = source
        self.restart = restart
        self.quit = threading.Event()
        self.alive_at = time.monotonic()
        self.index_offset: int | None = None if restart else 0
        self._clock: tuple[float, float] | None = None  # (wall time, media time) of the pace
        self._last_media = 0.0

    def run(self) -> None:
        owner = self.owner
        try:
            if self.restart:
                if not self._reopen(None, owner.BACKOFF_START):
                    return
            elif not self._open_first():
                return
            self._loop()
        except Exception as e:  # a bug must not vanish silently with the thread
            if not self.quit.is_set():
                log.exception("capture of %s failed", redact(self.source.uri))
                owner._finish(ReadStatus.ERROR, f"{redact(self.source.uri)}: capture failed: {e}")
        finally:
            self._close_source()

    def _stopped(self) -> bool:
        return self.quit.is_set() or self.owner._stop_event.is_set()

    def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds``, showing progress; True when told to stop meanwhile."""
        deadline = time.monotonic() + seconds
        while not self._stopped():
            self.alive_at = time.monotonic()
            left = deadline - self.alive_at
            if left <= 0:
                return False
            self.owner._stop_event.wait(min(left, self.WAIT_SLICE))
        return True

    def _hold(self) -> bool:
        """Wait while the capture is paused, showing progress; True when told to stop."""
        while not self.owner._playing.wait(self.WAIT_SLICE):
            self.alive_at = time.monotonic()
            if self._stopped():
                return True
        return self._stopped()

    def _open_first(self) -> bool:
        try:
            self.source.open()
        except MesoliveError as e:
            if not self.quit.is_set():
                self.owner._finish(ReadStatus.ERROR, str(e))
            return False
        self.alive_at = time.monotonic()
        if self.quit.is_set():
            return False
        level = logging.WARNING if self.source.note else None
        self.owner._report(ReadStatus.OK, self.owner._opened_message(), level=level)
        return True

    def _loop(self) -> None:
        owner, source = self.owner, self.source
        uri = redact(source.uri)
        backoff = owner.BACKOFF_START
        while not self._stopped():
            if not owner._playing.is_set():
                if self._hold():
                    return
                self._clock = None  # paced again from the next frame
            try:
                status, frame, message = source.read(owner.READ_TIMEOUT)
            except MesoliveError as e:
                status, frame, message = ReadStatus.ERROR, None, str(e)
            except Exception as e:  # e.g. cv2.error from a driver: handled as a failed read
                log.exception("reading %s failed", uri)
                status, frame, message = ReadStatus.ERROR, None, f"{uri}: {e}"
            if self.quit.is_set():
                return
            if status is ReadStatus.OK and frame is not None:
                backoff = owner.BACKOFF_START
                if owner.pace and not source.is_live:
                    frame = self._paced(frame)
                    if frame is None:
                        return  # stopped while waiting
                if not owner._deliver(self, frame):
                    return
            elif status is ReadStatus.TIMEOUT or status is ReadStatus.OK:
                continue
            elif status is ReadStatus.END:
                owner._finish(ReadStatus.END, message or f"end of {uri}")
                return
            elif not source.is_live:
                owner._finish(ReadStatus.ERROR, message or f"{uri}: read failed")
                return
            else:
                message = message or f"{uri}: read failed"
                owner._source_lost(message)
                if not self._reopen(message, backoff):
                    return
                backoff = min(backoff * 2, owner.BACKOFF_MAX)
                self._clock = None

    def _reopen(self, message: str | None, backoff: float) -> bool:
        """Close and reopen the source until it opens; False when stopped.

        ``message`` (why it failed) is reported before each wait; None tries
        at once first (a fresh copy after the watchdog's restart).
        """
        owner = self.owner
        while True:
            self._close_source()
            if message is not None:
                if self.quit.is_set():
                    return False
                owner._report(ReadStatus.ERROR, f"{message}; retrying in {backoff:g} s")
                if self._sleep(backoff):
                    return False
            try:
                self.source.open()
            except MesoliveError as e:
                self.alive_at = time.monotonic()
                if message is not None:
                    backoff = min(backoff * 2, owner.BACKOFF_MAX)
                message = str(e)
                continue
            self.alive_at = time.monotonic()
            if self._stopped():
                return False
            owner._report(ReadStatus.OK, "reconnected: " + owner._opened_message())
            return True

    def _paced(self, frame: Frame) -> Frame | None:
        """Wait until ``frame`` is due on the source's own clock; None when stopped."""
        fps = self.source.fps
        if frame.pts is not None:
            media = frame.pts
        elif fps:
            media = frame.index / fps
        else:
            return frame
        now = time.monotonic()
        if self._clock is None or media < self._last_media:  # first frame, or looped
            self._clock = (now, media)
        self._last_media = media
        due = self._clock[0] + (media - self._clock[1])
        if due < now - self.owner.MAX_LAG:  # decoding cannot keep up: don't burst to catch up
            self._clock = (now, media)
            due = now
        if due > now and self._sleep(due - now):
            return None
        return dataclasses.replace(frame, t_capture=time.monotonic())

    def _close_source(self) -> None:
        try:
            self.source.close()
        except Exception:
            log.exception("closing %s failed", redact(self.source.uri))
