"""The worker that runs the pipeline: a QThread that owns the FramePipeline.

Everything the pipeline allocates (ONNX Runtime sessions, a CUDA context,
TensorRT engines) is created, used and freed inside :meth:`run`, in this one
thread (house style H.1). Frames come from a :class:`LatestSlot` (newest
wins); results leave as queued signals carrying immutable ``FrameResult``
objects, so the GUI never waits on this thread and never shares mutable state
with it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QThread, Signal

from mesolive.errors import MesoliveError
from mesolive.pipeline.interval import IntervalController
from mesolive.pipeline.watchdog import StepWatchdog

if TYPE_CHECKING:
    from collections.abc import Callable

    from mesolive.gui.video_view import FrameScaler
    from mesolive.pipeline.mailbox import LatestSlot
    from mesolive.pipeline.pipeline import FramePipeline, PipelineConfig
    from mesolive.types import Frame

log = logging.getLogger(__name__)


class InferenceThread(QThread):
    """Takes frames from ``slot``, runs ``FramePipeline.process``, emits results.

    Signals
    -------
    pipeline_ready(str)
        The pipeline is built; the argument is the back end actually running
        (``"onnxruntime-cpu"``, ``"onnxruntime-cuda"``, ``"tensorrt"``).
    result_ready(object)
        One :class:`~mesolive.types.FrameResult` per processed frame.
    errored(str)
        A frame failed; at most one per :attr:`ERROR_INTERVAL` seconds (the
        rest are counted in :attr:`errors` and logged at debug level). Also
        a frame that has not come back from the pipeline for
        :attr:`STALL_TIMEOUT` seconds (a driver that hangs), and its return:
        the thread cannot be killed, so it waits for the step and goes on.
    failed(str)
        The pipeline could not be built, or kept failing after a rebuild; the
        thread ends after emitting it.
    summaries_ready(object)
        The pipeline's ``summaries()`` (a list of TrackSummary), once, when the
        thread ends after a successful start.
    interval_changed(object)
        With ``auto_every``: the new :class:`~mesolive.pipeline.interval.Interval`
        each time the analysis interval is raised or lowered to keep up.
    """

    pipeline_ready = Signal(str)
    result_ready = Signal(object)
    errored = Signal(str)
    failed = Signal(str)
    summaries_ready = Signal(object)
    interval_changed = Signal(object)

    TAKE_TIMEOUT = 0.1  # seconds: how quickly a stop request is noticed
    ERROR_INTERVAL = 2.0  # seconds between two errored signals
    REBUILD_AFTER = 10  # consecutive failed frames before the pipeline is rebuilt once
    STALL_TIMEOUT = 10.0  # seconds one frame may take before the watchdog reports it

    def __init__(
        self,
        slot: LatestSlot[Frame],
        config: PipelineConfig,
        parent: Any = None,
        *,
        auto_every: bool = False,
        scaler: FrameScaler | None = None,
        drops: Callable[[], int] | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("mesolive-inference")
        self.slot = slot
        self.config = config
        # scales each analysed frame for the view before its result leaves, so the
        # GUI thread only draws it (see mesolive.gui.video_view)
        self.scaler = scaler
        # "auto" interval: start at config.every, then follow an IntervalController fed
        # with the frames dropped because this thread was behind (a running count; by
        # default every frame the slot dropped)
        self.auto_every = auto_every
        self._drops = drops or (lambda: slot.drops)
        self._stop = threading.Event()
        self._paused = threading.Event()
        self.processed = 0
        self.errors = 0
        self.backend = ""
        self.det_size = 0
        self._last_error_emit = -1e9
        self._pipeline: FramePipeline | None = None
        # written by the GUI thread, read by this one: swapping a tuple is atomic, and
        # the loop applies whatever value it last sees (a rebuilt pipeline too)
        self._rule = (float(config.threshold), float(config.alert_seconds))

    # -- control (any thread) ------------------------------------------------------

    def set_paused(self, paused: bool) -> None:
        """While paused, frames are taken and discarded (not counted as drops)."""
        if paused:
            self._paused.set()
        else:
            self._paused.clear()

    def set_rule(self, threshold: float, alert_seconds: float) -> None:
        """The verdicts' fake-score threshold and the alert time; applied before the next frame.

        The pipeline judges with them from then on and each result says which
        threshold it was judged with, so what the window shows follows.
        """
        self._rule = (float(threshold), float(alert_seconds))

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def stop(self, timeout: float = 5.0) -> bool:
        """Set the stop flag, close the slot, wait up to ``timeout`` s.

        Returns True when the thread has ended. Closing the slot wakes a
        pending ``take`` at once; a frame in ``process`` is finished first.
        """
        self._stop.set()
        self.slot.close()
        if not self.isRunning():
            return True
        if QThread.currentThread() is self:
            return False
        ok = self.wait(int(timeout * 1000))
        if not ok:
            log.warning("inference did not stop within %g s", timeout)
        return bool(ok)

    # -- thread ------------------------------------------------------------------------

    def run(self) -> None:
        # Known to ``threading`` by its own name from the start (not as "Dummy-N" from
        # the first log record on): the benchmark's stall sampler names the threads
        # on a CPU and where their Python is by ``threading.enumerate()``.
        threading.current_thread().name = self.objectName()
        try:
            self._run()
        finally:
            _forget_dummy_thread()

    def _run(self) -> None:
        self._pipeline = self._build()
        if self._pipeline is None:
            return
        watchdog = StepWatchdog(
            "inference",
            self.STALL_TIMEOUT,
            on_stall=self.errored.emit,
            on_resume=self.errored.emit,
        )
        try:
            with watchdog:
                self._loop(watchdog)
            if self._pipeline is not None:
                try:
                    self.summaries_ready.emit(list(self._pipeline.summaries()))
                except Exception:
                    log.exception("pipeline summaries failed")
        finally:
            if self._pipeline is not None:
                self._pipeline.close()
                self._pipeline = None

    def _build(self) -> FramePipeline | None:
        try:
            from mesolive.pipeline.pipeline import FramePipeline

            pipeline = FramePipeline(self.config)
        except MesoliveError as e:
            self.failed.emit(str(e))
            return None
        except Exception as e:  # a bug; still a message in the window, not a dead app
            log.exception("building the pipeline failed")
            self.failed.emit(f"could not start the pipeline: {e}")
            return None
        self.backend = str(getattr(pipeline, "backend", ""))
        self.det_size = int(pipeline.det_size)  # read by the GUI thread once it is ready
        self.pipeline_ready.emit(self.backend)
        return pipeline

    def _loop(self, watchdog: StepWatchdog) -> None:
        consecutive = 0
        rebuilt = False
        keep_up = IntervalController(start=self.config.every) if self.auto_every else None
        while not self._stop.is_set() and self._pipeline is not None:
            frame = self.slot.take(self.TAKE_TIMEOUT)
            if frame is None:
                if self.slot.closed:
                    return
                continue
            if self._paused.is_set():
                if keep_up is not None:
                    keep_up.reset_window()  # a pause says nothing about the load
                continue
            try:
                threshold, alert_seconds = self._rule
                rule = self._pipeline.rule
                if (rule.threshold, rule.alert_seconds) != (threshold, alert_seconds):
                    self._pipeline.set_rule(threshold=threshold, alert_seconds=alert_seconds)
                if keep_up is not None and self._pipeline.config.every != keep_up.every:
                    self._pipeline.set_every(keep_up.every)  # a rebuilt pipeline too
                t0 = time.perf_counter()
                with watchdog.step(f"frame {frame.index}"):
                    result = self._pipeline.process(frame)
                busy = time.perf_counter() - t0
            except Exception as e:  # noqa: BLE001 (one bad frame must not end the session)
                consecutive += 1
                self._frame_failed(e)
                if consecutive >= self.REBUILD_AFTER:
                    if rebuilt:
                        self.failed.emit(f"analysis keeps failing: {e}")
                        return
                    # The watchdog of the house style: one fresh pipeline, then give up.
                    log.warning("%d frames failed in a row; rebuilding the pipeline", consecutive)
                    self._pipeline.close()
                    self._pipeline = self._build()
                    rebuilt, consecutive = True, 0
                continue
            consecutive = 0
            self.processed += 1
            self._prepare_display(result.frame)
            self.result_ready.emit(result)
            if keep_up is not None:
                change = keep_up.observe(
                    time.monotonic(), result.latency, busy, result.analysed, self._drops()
                )
                if change is not None:
                    self.interval_changed.emit(change)

    def _prepare_display(self, frame: Frame) -> None:
        if self.scaler is None:
            return
        try:
            self.scaler.prepare(frame)
        except Exception:  # a bug: the view scales the frames itself from now on
            log.exception("scaling frames for the view failed")
            self.scaler = None

    def _frame_failed(self, e: Exception) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._last_error_emit >= self.ERROR_INTERVAL:
            self._last_error_emit = now
            log.warning("analysing a frame failed: %s", e, exc_info=log.isEnabledFor(logging.DEBUG))
            self.errored.emit(f"analysing a frame failed: {e}")
        else:
            log.debug("analysing a frame failed: %s", e)


def _forget_dummy_thread() -> None:
    """Drop the ``threading`` entry Python made for this QThread, as it ends.

    A QThread is foreign to Python's ``threading`` module: the first call of
    ``threading.current_thread()`` in it (every log record makes one) registers
    a ``_DummyThread`` that stays "alive" in ``threading.enumerate()`` after
    the thread has ended, one per session, and cannot be joined.
    """
    ident = threading.get_ident()
    active = getattr(threading, "_active", None)
    dummy_type = getattr(threading, "_DummyThread", None)
    if active is None or dummy_type is None:
        return
    with getattr(threading, "_active_limbo_lock", threading.Lock()):
        if isinstance(active.get(ident), dummy_type):
            del active[ident]
