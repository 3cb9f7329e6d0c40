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
from mesolive.gui.inference_thread import InferenceThread
from mesolive.gui.tracks import Alert, TrackStore
from mesolive.types import FrameResult, ReadStatus

if TYPE_CHECKING:
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
    """Counts of one session, read by the status bar and the benchmark."""

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

    def add_latency(self, seconds: float, alpha: float = 0.1) -> None:
        prev = self.latency_ema
        self.latency_ema = seconds if prev is None else prev + alpha * (seconds - prev)


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
    """

    state_changed = Signal(object)
    message = Signal(object, str)
    backend_changed = Signal(str)
    result_ready = Signal(object)
    alert_raised = Signal(object)

    CAPTURE_STOP_TIMEOUT = 2.0
    INFERENCE_STOP_TIMEOUT = 5.0

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = State.IDLE
        self.tracks = TrackStore()
        self.counters = SessionCounters()
        self.latest: FrameResult | None = None
        self.backend = ""
        self.uri = ""
        self.config: PipelineConfig | None = None
        self.summaries: list[Any] = []
        self.last_error = ""
        self.last_error_source = False  # the last error was the source's (not the models')
        self._session = 0
        self._slot: LatestSlot[Frame] | None = None
        self._capture: CaptureThread | None = None
        self._inference: InferenceThread | None = None
        self._relay: _CaptureRelay | None = None
        self._pending_capture: CaptureThread | None = None  # started once the pipeline is ready
        self._stuck: list[Any] = []  # threads that did not stop in time (kept alive, logged)
        self._capture_status: tuple[ReadStatus, str] | None = None
        self._capture_base = (0, 0)  # capture counts when the pipeline became ready

    # -- properties -----------------------------------------------------------------

    @property
    def threshold(self) -> float:
        return self.tracks.threshold

    def set_threshold(self, value: float) -> None:
        """Threshold of the colours, the alerts and the running pipeline's verdicts."""
        self.tracks.threshold = float(value)
        if self._inference is not None:
            self._inference.set_threshold(value)

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

    # -- session control ----------------------------------------------------------

    def start(self, uri: str, config: PipelineConfig, *, loop: bool = False) -> bool:
        """Stop what runs, then start ``uri`` with ``config``; False if it cannot start.

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
        self.tracks.clear()
        self.latest = None
        self.summaries = []
        self.backend = ""
        self.last_error = ""
        self._capture_status = None
        self.counters = SessionCounters(uri=uri)
        self._capture_base = (0, 0)
        try:
            source = make_source(uri, loop=loop)
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
        capture = CaptureThread(source, slot, pace=True, on_status=relay)
        inference = InferenceThread(slot, config)
        inference.pipeline_ready.connect(self._on_pipeline_ready)
        inference.result_ready.connect(self._on_result)
        inference.errored.connect(self._on_errored)
        inference.failed.connect(self._on_failed)
        inference.summaries_ready.connect(self._on_summaries)
        inference.finished.connect(self._on_inference_finished)
        self._slot, self._capture, self._inference, self._relay = slot, capture, inference, relay
        self._set_state(State.STARTING)
        inference.start()
        if source.is_live:
            capture.start()  # opening a camera takes as long as loading models: overlap them
        else:
            self._pending_capture = capture  # a file waits, so no frame of it is skipped
        return True

    def set_paused(self, paused: bool) -> None:
        """Pause or resume analysis and display (a live source keeps capturing)."""
        if self._inference is None or self.state not in (State.RUNNING, State.PAUSED):
            return
        self._inference.set_paused(paused)
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
        if not self._current(self.sender()):
            return
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
    def _on_summaries(self, summaries: list[Any]) -> None:
        # Arrives after the thread ended, possibly after stop(): keep the newest.
        self.summaries = list(summaries)

    @Slot(int, object, str)
    def _on_capture_status(self, session: int, status: ReadStatus, message: str) -> None:
        if session != self._session:
            return
        self._capture_status = (status, message)
        if status is ReadStatus.ERROR:
            # Fatal errors also end the session (the slot closes and inference
            # ends); this shows live-source retries while they happen.
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


__all__ = ["Level", "Presenter", "SessionCounters", "State"]
