"""The presenter: one monitoring session (capture → inference → GUI) and its state.

It owns the capture thread, the frame slot and the inference thread of the
running session, keeps the newest result and every track's history, and
turns thread events into signals the window shows. It holds no widget, so it
is tested without one.

Threads talk to it only through queued signals carrying immutable values.
Each session gets a number; an event of an older session that arrives late
(after a stop or a source change) is ignored.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal, Slot

from mesolive.errors import MesoliveError
from mesolive.gui import gc_guard
from mesolive.gui.inference_thread import InferenceThread
from mesolive.gui.tracks import Alert, TrackStore
from mesolive.pipeline.interval import Interval
from mesolive.pipeline.pipeline import preload
from mesolive.redact import redact
from mesolive.types import FrameResult, ReadStatus

if TYPE_CHECKING:
    from mesolive.gui.video_view import FrameScaler
    from mesolive.pipeline.capture import CaptureThread
    from mesolive.pipeline.mailbox import LatestSlot
    from mesolive.pipeline.pipeline import PipelineConfig
    from mesolive.types import Frame

log = logging.getLogger(__name__)


class State(enum.Enum):
    IDLE = "idle"  # nothing started yet
    STARTING = "starting"  # models loading, source opening
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"  # stopped by the user, at the end of a file, or after a failure


class Level(enum.Enum):
    INFO = "info"
    WARNING = "warning"  # e.g. a live source reconnecting
    ERROR = "error"  # the session ended because of it


@dataclass
class SessionCounters:
    """Counts of one session (mutable, GUI thread); others read :class:`SessionStats`."""

    uri: str = ""
    t_start: float = field(default_factory=time.monotonic)
    started: float = field(default_factory=time.time)  # wall clock of t_start, for reports
    t_ready: float | None = None  # pipeline built
    t_first_result: float | None = None
    results: int = 0
    frames_read: int = 0  # from the capture thread
    capture_drops: int = 0  # frames overwritten in the slot (inference too slow)
    errors: int = 0  # frames the pipeline failed on
    latency_ema: float | None = None  # seconds, capture → processed
    painted: int = 0  # distinct results drawn
    superseded: int = 0  # results replaced by a newer one before they were drawn
    t_first_paint: float | None = None

    def add_latency(self, seconds: float, alpha: float = 0.1) -> None:
        prev = self.latency_ema
        self.latency_ema = seconds if prev is None else prev + alpha * (seconds - prev)


@dataclass(frozen=True)
class SessionStats:
    """The session's figures at one moment: a read-only copy.

    What the status bar, the testing hooks and the benchmark read; none of
    them reaches into the presenter's counters or the widgets for these.

    Attributes
    ----------
    t
        ``time.monotonic()`` when taken.
    state, backend
        The session's state and the back end actually running.
    results
        Results received from the pipeline.
    frames_read, capture_drops
        Frames the capture thread read, and those it overwrote in the slot
        because the analysis had no time for them (counted from the moment
        the pipeline was ready).
    errors
        Frames the pipeline failed on.
    latency_ema
        Seconds from capture to result (moving average); None before a result.
    painted, superseded
        Results drawn, and results replaced by a newer one before a paint.
    t_first_paint
        ``time.monotonic()`` of the session's first paint, or None.
    """

    t: float
    state: State
    backend: str
    results: int
    frames_read: int
    capture_drops: int
    errors: int
    latency_ema: float | None
    painted: int
    superseded: int
    t_first_paint: float | None

    @property
    def dropped(self) -> int:
        """Frames captured but never shown: not analysed, or replaced before a paint."""
        return self.capture_drops + self.superseded

    @property
    def dropped_share(self) -> float | None:
        """:attr:`dropped` over the frames read; None before any was read."""
        return self.dropped / self.frames_read if self.frames_read else None

    def fps_since(self, earlier: SessionStats) -> float:
        """Frames drawn per second between ``earlier`` and these figures."""
        return max(0, self.painted - earlier.painted) / max(1e-6, self.t - earlier.t)


class _CaptureRelay(QObject):
    """Carries capture-thread callbacks into the GUI thread as a queued signal."""

    status = Signal(int, object, str)  # session, ReadStatus, message

    def __init__(self, session: int) -> None:
        super().__init__()
        self.session = session

    def __call__(self, status: ReadStatus, message: str) -> None:  # capture thread
        self.status.emit(self.session, status, message)


class Presenter(QObject):
    """Starts, pauses and stops sessions; keeps the newest result and the tracks.

    Signals
    -------
    state_changed(object)
        The new :class:`State`.
    message(object, str)
        A :class:`Level` and a one-line text for the banner; empty text clears it.
    backend_changed(str)
        The back end actually running.
    result_ready(object)
        The newest :class:`FrameResult` (in the GUI thread).
    alert_raised(object)
        An :class:`~mesolive.gui.tracks.Alert`.
    interval_changed(object)
        The analysis :class:`~mesolive.pipeline.interval.Interval` in force, at
        each start and each time the "auto" interval moves it.
    """

    state_changed = Signal(object)
    message = Signal(object, str)
    backend_changed = Signal(str)
    result_ready = Signal(object)
    alert_raised = Signal(object)
    interval_changed = Signal(object)
    source_lost = Signal(str)  # why a live source stopped giving frames; "" once it gives again

    CAPTURE_STOP_TIMEOUT = 2.0
    INFERENCE_STOP_TIMEOUT = 5.0

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = State.IDLE
        self.tracks = TrackStore()
        self._rule = (0.5, 3.0)  # (threshold, alert seconds) asked of the pipeline
        self.counters = SessionCounters()
        self.latest: FrameResult | None = None
        self.backend = ""
        self.det_size = 0  # the detector's input side once the pipeline is ready
        self.uri = ""
        self.config: PipelineConfig | None = None
        self.summaries: list[Any] = []
        self.interval = Interval(1, auto=False)
        self.last_error = ""
        self.last_error_source = False  # the last error was the source's (not the models')
        self._session = 0
        self._slot: LatestSlot[Frame] | None = None
        self._capture: CaptureThread | None = None
        self._inference: InferenceThread | None = None
        self._session_thread: InferenceThread | None = None  # the latest start()'s, see there
        self._relay: _CaptureRelay | None = None
        self._pending_capture: CaptureThread | None = None  # started once the pipeline is ready
        self._stuck: list[Any] = []  # threads that did not stop in time (kept alive, logged)
        self._capture_status: tuple[ReadStatus, str] | None = None
        self._capture_base = (0, 0)  # capture counts when the pipeline became ready
        #: the view's frame scaler, handed to each session's inference thread
        self.scaler: FrameScaler | None = None

    # -- properties -----------------------------------------------------------------

    @property
    def threshold(self) -> float:
        """The threshold asked of the pipeline (results say which one they were judged with)."""
        return self._rule[0]

    @property
    def judged_threshold(self) -> float:
        """The threshold the newest result was judged with, else the one asked for."""
        shown = self.tracks.threshold
        return shown if shown is not None else self._rule[0]

    @property
    def alert_seconds(self) -> float:
        """The alert time asked of the pipeline."""
        return self._rule[1]

    def set_rule(self, threshold: float, alert_seconds: float) -> None:
        """Ask the running pipeline (and the next one) to judge with these values.

        This is the only way a threshold reaches anything: the pipeline applies
        it from its next frame, each result carries it, and the colours,
        labels, table, timeline, alerts and report follow the results.
        """
        self._rule = (float(threshold), float(alert_seconds))
        if self._inference is not None:
            self._inference.set_rule(*self._rule)

    @property
    def running(self) -> bool:
        return self.state in (State.STARTING, State.RUNNING, State.PAUSED)

    def refresh_counters(self) -> SessionCounters:
        """Pull the capture thread's counters (plain ints, safe to read)."""
        cap = self._capture
        if cap is not None:
            self._copy_capture_counts(cap)
        inf = self._inference
        if inf is not None:
            self.counters.errors = inf.errors
        return self.counters

    def stats(self) -> SessionStats:
        """The session's figures now (the threads' counts pulled first)."""
        c = self.refresh_counters()
        return SessionStats(
            t=time.monotonic(),
            state=self.state,
            backend=self.backend,
            results=c.results,
            frames_read=c.frames_read,
            capture_drops=c.capture_drops,
            errors=c.errors,
            latency_ema=c.latency_ema,
            painted=c.painted,
            superseded=c.superseded,
            t_first_paint=c.t_first_paint,
        )

    def note_painted(self, _result: FrameResult) -> None:
        """The view drew a new result (its paint callback)."""
        c = self.counters
        c.painted += 1
        if c.t_first_paint is None:
            c.t_first_paint = time.monotonic()

    def note_superseded(self) -> None:
        """The view replaced a result before drawing it (newest wins)."""
        self.counters.superseded += 1

    def capture_region(self) -> tuple[int, int, int, int] | None:
        """The rectangle ``(x, y, w, h)`` the running source reads, in virtual-screen pixels.

        Read from the running screen or window source itself (its
        ``grab_region``, which a window source moves as its window moves; a
        frozen value, so reading it here is safe), never by opening the
        source again. None without such a source, or before it has opened.
        """
        cap = self._capture
        region = getattr(cap.source, "grab_region", None) if cap is not None else None
        if region is None:
            return None
        return int(region.left), int(region.top), int(region.width), int(region.height)

    def capture_sees_overlay(self) -> bool:
        """The running source reads the screen itself (see ``FrameSource.reads_screen``),
        so a window over its region is in its frames; False before it has opened."""
        cap = self._capture
        return cap is not None and cap.source.reads_screen

    # -- session control ----------------------------------------------------------

    def set_loop(self, on: bool) -> None:
        """Loop the running file source from its next end, or stop at it; a live source
        has no end, so it ignores this. The next session starts with ``loop`` anyway."""
        source = self._capture.source if self._capture is not None else None
        if getattr(source, "loop", None) is not None:
            source.loop = on  # a bool the capture thread reads at the file's end

    def start(
        self, uri: str, config: PipelineConfig, *, loop: bool = False, auto_every: bool = False
    ) -> bool:
        """Stop what runs, then start ``uri`` with ``config``; False if it cannot start.

        With ``auto_every`` the analysis interval starts at ``config.every`` and
        is then raised or lowered to keep up (:mod:`mesolive.pipeline.interval`).

        A URI that cannot be parsed fails here (message, state STOPPED); a
        source that cannot be opened fails a moment later from the capture
        thread, the same way.
        """
        from mesolive.pipeline.capture import CaptureThread
        from mesolive.pipeline.mailbox import LatestSlot
        from mesolive.sources.registry import make_source

        self.stop(quiet=True)
        self._session += 1
        self.uri = uri
        self.config = config
        self._rule = (config.threshold, config.alert_seconds)
        self.tracks.clear()
        self.latest = None
        self.summaries = []
        self.backend = ""
        self.det_size = 0
        self.last_error = ""
        self._capture_status = None
        self.counters = SessionCounters(uri=uri)
        self._capture_base = (0, 0)
        try:
            source = make_source(uri, loop=loop)
            source.check()  # a missing file is said now, not after the models have loaded
        except MesoliveError as e:
            self._fail(str(e))
            return False
        except Exception as e:  # a bug in a source; the app must stay up
            log.exception("creating source %s failed", uri)
            self._fail(f"{uri}: {e}")
            return False
        self.message.emit(Level.INFO, "")
        slot: LatestSlot[Frame] = LatestSlot()
        relay = _CaptureRelay(self._session)
        relay.status.connect(self._on_capture_status)
        # the presenter reports a fatal source error itself (banner and log): once
        capture = CaptureThread(source, slot, pace=True, on_status=relay, log_final_error=False)
        preload()  # the modules the worker's pipeline imports, here on the GUI thread
        inference = InferenceThread(
            slot,
            config,
            auto_every=auto_every,
            scaler=self.scaler,
            # a burst after a stream's stall is missed at any speed: not a reason to skip frames
            drops=lambda: capture.drops_behind,
        )
        inference.pipeline_ready.connect(self._on_pipeline_ready)
        inference.result_ready.connect(self._on_result)
        inference.errored.connect(self._on_errored)
        inference.failed.connect(self._on_failed)
        inference.summaries_ready.connect(self._on_summaries)
        inference.interval_changed.connect(self._on_interval)
        inference.finished.connect(self._on_inference_finished)
        self._slot, self._capture, self._inference, self._relay = slot, capture, inference, relay
        self._session_thread = inference  # kept after stop(): its summaries come after it ends
        self._set_interval(Interval(config.every, auto=auto_every))
        self._set_state(State.STARTING)
        gc_guard.hold()  # until stop(): no cycle of Qt objects is collected on a worker
        inference.start()
        if source.is_live:
            capture.start()  # opening a camera takes as long as loading models: overlap them
        else:
            self._pending_capture = capture  # a file waits, so no frame of it is skipped
        return True

    def set_paused(self, paused: bool) -> None:
        """Pause or resume analysis and display; a file also holds its place (a live
        source keeps capturing: :meth:`CaptureThread.set_paused`)."""
        if self._inference is None or self.state not in (State.RUNNING, State.PAUSED):
            return
        self._inference.set_paused(paused)
        if self._capture is not None:
            self._capture.set_paused(paused)
        self._set_state(State.PAUSED if paused else State.RUNNING)

    def stop(self, *, quiet: bool = False) -> bool:
        """Stop capture first, then inference; True when both ended in time."""
        capture, inference = self._capture, self._inference
        self._capture = self._inference = self._pending_capture = None
        self._slot = None
        relay, self._relay = self._relay, None
        ok = True
        if capture is not None:
            if not capture.stop(self.CAPTURE_STOP_TIMEOUT):
                ok = False
                self._stuck.append(capture)
            self._copy_capture_counts(capture)
        if inference is not None:
            if not inference.stop(self.INFERENCE_STOP_TIMEOUT):
                ok = False
                self._stuck.append(inference)  # never drop a running QThread (Qt aborts)
            self.counters.errors = inference.errors
        if relay is not None:
            relay.deleteLater()  # after the capture thread's last callback
        if capture is not None or inference is not None:
            gc_guard.release()
        if (capture is not None or inference is not None) and not quiet:
            self._set_state(State.STOPPED)
        return ok

    def shutdown(self) -> bool:
        """Stop everything for good (window closing); True when no thread is left."""
        ok = self.stop(quiet=True)
        still = [t for t in self._stuck if _alive(t)]
        if still:
            log.warning("threads still running at shutdown: %s", [_name(t) for t in still])
        return ok and not still

    # -- events from the threads --------------------------------------------------------

    def _copy_capture_counts(self, cap: CaptureThread) -> None:
        # A live source opens while the models load; what it captured before the
        # pipeline was ready is neither analysed nor counted as dropped.
        read0, drops0 = self._capture_base
        self.counters.frames_read = max(0, cap.frames_read - read0)
        self.counters.capture_drops = max(0, cap.drops - drops0)

    def _current(self, sender: QObject | None) -> bool:
        return sender is not None and sender is self._inference

    @Slot(str)
    def _on_pipeline_ready(self, backend: str) -> None:
        if not self._current(self.sender()):
            return
        self.backend = backend
        self.det_size = self._inference.det_size if self._inference is not None else 0
        self.counters.t_ready = time.monotonic()
        if self._capture is not None and self._pending_capture is None:
            self._capture_base = (self._capture.frames_read, self._capture.drops)
        self.backend_changed.emit(backend)
        if self._pending_capture is not None:
            self._pending_capture.start()
            self._pending_capture = None
        if self.state is State.STARTING:
            self._set_state(State.RUNNING)

    @Slot(object)
    def _on_result(self, result: FrameResult) -> None:
        if self._current(self.sender()):
            self.take_result(result)

    def take_result(self, result: FrameResult) -> None:
        """One result of this session: counters, track histories, alerts, then ``result_ready``.

        The running inference thread's results come here (an older session's
        are dropped before). Nothing is judged here: verdicts, alerts and the
        threshold are the result's own.
        """
        c = self.counters
        c.results += 1
        if c.t_first_result is None:
            c.t_first_result = time.monotonic()
        c.add_latency(result.latency)
        self.latest = result
        for alert in self.tracks.update(result):
            self._on_alert(alert)
        self.result_ready.emit(result)

    def _on_alert(self, alert: Alert) -> None:
        log.warning("%s", alert.message)
        self.alert_raised.emit(alert)

    @Slot(str)
    def _on_errored(self, message: str) -> None:
        if self._current(self.sender()):
            self.message.emit(Level.WARNING, message)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        if self._current(self.sender()):
            self._fail(message, source=False)

    @Slot(object)
    def _on_interval(self, interval: Interval) -> None:
        if self._current(self.sender()):
            self._set_interval(interval)

    def _set_interval(self, interval: Interval) -> None:
        self.interval = interval
        self.interval_changed.emit(interval)

    @Slot(object)
    def _on_summaries(self, summaries: list[Any]) -> None:
        # Arrives after the thread ended, possibly after stop(), and after a new start()
        # when the user switched sources: only this session's thread's count.
        if self.sender() is self._session_thread:
            self.summaries = list(summaries)

    @Slot(int, object, str)
    def _on_capture_status(self, session: int, status: ReadStatus, message: str) -> None:
        if session != self._session:
            return
        was_lost = self._capture_status is not None and self._capture_status[0] is ReadStatus.ERROR
        self._capture_status = (status, message)
        if status is ReadStatus.ERROR:
            # Fatal errors also end the session (the slot closes and inference
            # ends); this shows live-source retries while they happen.
            self.message.emit(Level.WARNING, message)
            self.source_lost.emit(message)
            return
        if was_lost and status is ReadStatus.OK:
            self.source_lost.emit("")
        if status is ReadStatus.OK and self._capture is not None and self._capture.note:
            # read otherwise than asked (a window from the screen under it): say so
            self.message.emit(Level.WARNING, message)
        elif status is ReadStatus.OK and message.startswith("reconnected"):
            self.message.emit(Level.INFO, message)

    @Slot()
    def _on_inference_finished(self) -> None:
        if not self._current(self.sender()):
            return
        # The slot was closed by the capture thread (end of file, fatal error) or
        # the pipeline failed: the session is over; stop() joins what is left.
        status = self._capture_status
        failed = bool(self.last_error)
        self.stop(quiet=True)
        if not failed and status is not None:
            st, msg = status
            if st is ReadStatus.ERROR:
                self._fail(msg)
                return
            if st is ReadStatus.END:
                self.message.emit(Level.INFO, f"{msg}. Press F5 to play it again.")
        self._set_state(State.STOPPED)

    # -- helpers ---------------------------------------------------------------------------

    def _fail(self, message: str, *, source: bool = True) -> None:
        message = redact(message)  # it is shown, logged and reported
        self.last_error = message
        self.last_error_source = source
        log.warning("%s", message)
        self.stop(quiet=True)
        self.message.emit(Level.ERROR, message)
        self._set_state(State.STOPPED)

    def _set_state(self, state: State) -> None:
        if state is not self.state:
            self.state = state
            self.state_changed.emit(state)


def _alive(t: Any) -> bool:
    is_running = getattr(t, "isRunning", None)
    return bool(is_running()) if is_running is not None else bool(t.is_alive())


def _name(t: Any) -> str:
    return str(t.objectName()) if hasattr(t, "objectName") else str(t.name)


__all__ = ["Level", "Presenter", "SessionCounters", "SessionStats", "State"]
