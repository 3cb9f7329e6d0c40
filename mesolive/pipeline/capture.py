"""The capture thread: owns a FrameSource and feeds a latest-frame slot."""

from __future__ import annotations

import atexit
import dataclasses
import logging
import threading
import time
import weakref
from collections.abc import Callable

from mesolive.errors import MesoliveError
from mesolive.pipeline.mailbox import LatestSlot
from mesolive.sources._cv import redact
from mesolive.sources.base import FrameSource
from mesolive.types import Frame, ReadStatus

log = logging.getLogger(__name__)

StatusCallback = Callable[[ReadStatus, str], None]

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
    """Reads ``source`` in its own thread and puts each frame into ``slot``.

    The source is opened, read and closed in this thread, so handles bound
    to a thread (mss, X11) live here. Frames go into the slot as they come;
    one the consumer has not taken yet is overwritten and counted in
    :attr:`drops`.

    Parameters
    ----------
    source
        An unopened source (``make_source``); closed when the thread ends.
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
        Called from this thread with ``(status, message)``: ``OK`` after each
        successful (re)open, ``ERROR`` for each failure and retry
        (``"…; retrying in 2 s"``), ``END`` at the end. Exceptions it raises
        are logged and ignored.
    max_frames
        Stop after this many frames, as if the source had ended.

    Live sources (cameras, screens, windows, streams) that fail while
    running are closed and reopened with a backoff that doubles from
    :attr:`BACKOFF_START` to :attr:`BACKOFF_MAX` seconds and resets after a
    frame arrives; they never end by themselves. A failed first open, or any
    failure of a non-live source, ends the thread.
    """

    READ_TIMEOUT = 0.1  # seconds per read, so stop() is noticed quickly
    BACKOFF_START = 0.5
    BACKOFF_MAX = 10.0
    MAX_LAG = 0.5  # a paced source this far behind its clock restarts the clock

    def __init__(
        self,
        source: FrameSource,
        slot: LatestSlot[Frame],
        *,
        pace: bool = True,
        on_status: StatusCallback | None = None,
        max_frames: int | None = None,
        log_final_error: bool = True,
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
        self._stop_event = threading.Event()
        self._frames_read = 0
        self._last_status: ReadStatus | None = None
        self._last_message = ""
        self._clock: tuple[float, float] | None = None  # (wall time, media time) of the pace
        self._last_media = 0.0

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
    def last_status(self) -> ReadStatus | None:
        """The last status reported through ``on_status`` (None before any)."""
        return self._last_status

    @property
    def last_message(self) -> str:
        return self._last_message

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the thread to end, wait up to ``timeout`` s; True when it has ended."""
        self._stop_event.set()
        if self.ident is None:  # never started
            return True
        if threading.current_thread() is self:  # called from on_status: ends after it returns
            return False
        self.join(timeout)
        if self.is_alive():
            log.warning(
                "capture of %s did not stop within %g s (blocked in the source's read)",
                redact(self.source.uri),
                timeout,
            )
            return False
        return True

    # -- thread -------------------------------------------------------------------

    def run(self) -> None:
        _running.add(self)
        try:
            if not self._open_first():
                return
            self._loop()
        except Exception as e:  # a bug must not vanish silently with the thread
            log.exception("capture of %s failed", redact(self.source.uri))
            self._report(ReadStatus.ERROR, f"{redact(self.source.uri)}: capture failed: {e}")
            self.slot.close()
        finally:
            self._close_source()
            _running.discard(self)

    def _open_first(self) -> bool:
        try:
            self.source.open()
        except MesoliveError as e:
            self._report(ReadStatus.ERROR, str(e), final=True)
            self.slot.close()
            return False
        self._report(ReadStatus.OK, self._opened_message())
        return True

    def _opened_message(self) -> str:
        fps = f" at {self.source.fps:g} fps" if self.source.fps else ""
        return f"capturing {redact(self.source.uri)}{fps}"

    def _loop(self) -> None:
        source = self.source
        backoff = self.BACKOFF_START
        while not self._stop_event.is_set():
            try:
                status, frame, message = source.read(self.READ_TIMEOUT)
            except MesoliveError as e:
                status, frame, message = ReadStatus.ERROR, None, str(e)
            except Exception as e:  # e.g. cv2.error from a driver: handled as a failed read
                log.exception("reading %s failed", redact(source.uri))
                status, frame, message = ReadStatus.ERROR, None, f"{redact(source.uri)}: {e}"
            if status is ReadStatus.OK and frame is not None:
                backoff = self.BACKOFF_START
                if self.pace and not source.is_live:
                    frame = self._paced(frame)
                    if frame is None:
                        return  # stopped while waiting
                self.slot.put(frame)
                self._frames_read += 1
                if self.max_frames is not None and self._frames_read >= self.max_frames:
                    self._finish(ReadStatus.END, f"stopped after {self._frames_read} frames")
                    return
            elif status is ReadStatus.TIMEOUT or status is ReadStatus.OK:
                continue
            elif status is ReadStatus.END:
                self._finish(ReadStatus.END, message or f"end of {redact(source.uri)}")
                return
            elif not source.is_live:
                self._finish(ReadStatus.ERROR, message or f"{redact(source.uri)}: read failed")
                return
            else:
                if not self._reconnect(message or f"{redact(source.uri)}: read failed", backoff):
                    return
                backoff = min(backoff * 2, self.BACKOFF_MAX)
                self._clock = None

    def _reconnect(self, message: str, backoff: float) -> bool:
        """Close and reopen a live source until it opens; False when stopped."""
        while True:
            self._close_source()
            self._report(ReadStatus.ERROR, f"{message}; retrying in {backoff:g} s")
            if self._stop_event.wait(backoff):
                return False
            try:
                self.source.open()
            except MesoliveError as e:
                message = str(e)
                backoff = min(backoff * 2, self.BACKOFF_MAX)
                continue
            self._report(ReadStatus.OK, "reconnected: " + self._opened_message())
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
        if due < now - self.MAX_LAG:  # decoding cannot keep up: don't burst to catch up
            self._clock = (now, media)
            due = now
        if due > now and self._stop_event.wait(due - now):
            return None
        return dataclasses.replace(frame, t_capture=time.monotonic())

    def _finish(self, status: ReadStatus, message: str) -> None:
        self._report(status, message, final=True)
        self.slot.close()

    def _report(self, status: ReadStatus, message: str, *, final: bool = False) -> None:
        self._last_status = status
        self._last_message = message
        if status is ReadStatus.ERROR and (self.log_final_error or not final):
            log.warning("%s", message)
        else:
            log.debug("%s: %s", status.value, message)
        if self.on_status is None:
            return
        try:
            self.on_status(status, message)
        except Exception:
            log.exception("on_status callback failed")

    def _close_source(self) -> None:
        try:
            self.source.close()
        except Exception:
            log.exception("closing %s failed", redact(self.source.uri))
