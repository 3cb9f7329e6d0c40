"""The status bar's labels: state, source, back end, fps, latency, drops, analysis interval.

They read the presenter's read-only figures (:meth:`Presenter.stats`) once a
second and follow its signals; the back end is named with a warning where it
is a CPU fallback on a machine that has a GPU. In a narrow window each label
shortens its text with "…" (the source's in the middle, keeping the file
name) instead of being drawn over its neighbour, and a message (where an
export went) that would not fit beside the figures hides them while it shows.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer
from PySide6.QtGui import QHelpEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QStatusBar, QStyle, QToolTip

from mesolive.backends import RUNNER_LABELS
from mesolive.gui.presenter import Presenter, SessionStats, State
from mesolive.pipeline.interval import Interval
from mesolive.redact import redact

log = logging.getLogger(__name__)

_GPU_BACKENDS = ("tensorrt", "onnxruntime-cuda")


def backend_text(actual: str, requested: str, gpu_expected: bool) -> tuple[str, bool]:
    """Status-bar text for the back end, and whether it is a fallback to warn about.

    A fallback is a CPU back end where a GPU one was asked for, or where
    ``auto`` could have used a GPU this machine has. Several models may run on
    different back ends (``"tensorrt+onnxruntime-cpu"``): one on the CPU is
    a fallback too.
    """
    parts = [p for p in actual.split("+") if p] or ["?"]
    name = " + ".join(RUNNER_LABELS.get(p, p) for p in parts)
    wanted_gpu = requested in _GPU_BACKENDS or (requested == "auto" and gpu_expected)
    if wanted_gpu and any(p not in _GPU_BACKENDS for p in parts):
        asked = RUNNER_LABELS.get(requested, "a GPU back end")
        return f"⚠ {name}: fallback, {asked} unavailable", True
    return name, False


def gpu_expected() -> bool:
    """Whether this machine has an NVIDIA GPU with a driver (then CPU means a fallback).

    Asks the CUDA driver (no context is made), not ONNX Runtime: onnxruntime-gpu
    lists its CUDA provider also where no GPU exists.
    """
    try:
        from mesolive.backends.gpuinfo import probe_driver

        return probe_driver().ok
    except Exception:  # a broken driver: no GPU to expect
        log.debug("GPU probe failed", exc_info=True)
        return False


class ElidedLabel(QLabel):
    """A one-line label that shortens its text with "…" to the width it is given.

    A QLabel will not be narrower than its whole text, so in a narrow window
    the status bar laid its labels over one another. This one may shrink to
    :attr:`MIN_CHARS` characters; it keeps its whole text (``text()``),
    draws as much as fits, and shows the whole text on hover when shortened
    (unless it has a tooltip of its own).
    """

    MIN_CHARS = 4

    def __init__(self, text: str = "", mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight):
        super().__init__(text)
        self.mode = mode

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(
            min(hint.width(), self.fontMetrics().averageCharWidth() * self.MIN_CHARS), hint.height()
        )

    def shown_text(self) -> str:
        """The text as drawn at the present width."""
        return self.fontMetrics().elidedText(self.text(), self.mode, self.contentsRect().width())

    def event(self, e: QEvent) -> bool:
        if (
            isinstance(e, QHelpEvent)
            and e.type() == QEvent.Type.ToolTip
            and not self.toolTip()
            and self.shown_text() != self.text()
        ):
            QToolTip.showText(e.globalPos(), self.text(), self)
            return True
        return super().event(e)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        self.style().drawItemText(
            painter,
            self.contentsRect(),
            int(self.alignment()),
            self.palette(),
            self.isEnabled(),
            self.shown_text(),
            self.foregroundRole(),
        )


class SessionStatus(QObject):
    """Adds the labels to ``bar`` and keeps them up to date.

    ``requested_backend`` is the command line's ``--backend`` (``"auto"``
    when not given): a CPU back end is a fallback against it.
    """

    STATS_INTERVAL_MS = 1000

    def __init__(self, bar: QStatusBar, presenter: Presenter, requested_backend: str) -> None:
        super().__init__(bar)
        self.presenter = presenter
        self.requested_backend = requested_backend
        self._gpu_expected = gpu_expected()
        self._last_stats: SessionStats | None = None  # the previous second's figures
        self.state_label = ElidedLabel("idle")
        self.source_label = ElidedLabel("no source", Qt.TextElideMode.ElideMiddle)
        self.backend_label = ElidedLabel("back end: –")
        self.fps_label = ElidedLabel("– fps")
        self.latency_label = ElidedLabel("latency –")
        self.drops_label = ElidedLabel("dropped –")
        self.interval_label = ElidedLabel("")  # "analysing every 3rd frame to keep up"
        bar.addWidget(self.state_label)
        bar.addWidget(self.source_label, 1)
        self._figures = (
            self.backend_label,
            self.fps_label,
            self.latency_label,
            self.drops_label,
            self.interval_label,
        )
        for w in self._figures:
            bar.addPermanentWidget(w)
        self.bar = bar
        bar.messageChanged.connect(self._make_room)
        bar.installEventFilter(self)  # a resize while a message shows: room again
        presenter.backend_changed.connect(self.show_backend)
        presenter.interval_changed.connect(self.show_interval)
        presenter.state_changed.connect(self.show_state)
        self.timer = QTimer(self)
        self.timer.setInterval(self.STATS_INTERVAL_MS)
        self.timer.timeout.connect(self.update_stats)
        self.timer.start()

    def _make_room(self, message: str) -> None:
        """A message gets the bar to itself while it shows, where it and the figures do not fit.

        QStatusBar draws a message left of the first visible permanent
        label, so at the window's smallest size a message beside the figures
        got no room at all.
        """
        gap = self.bar.layout().spacing() + 2 * self.bar.style().pixelMetric(
            QStyle.PixelMetric.PM_LayoutHorizontalSpacing
        )
        need = self.bar.fontMetrics().horizontalAdvance(message) + sum(
            w.sizeHint().width() + gap for w in self._figures
        )
        crowded = bool(message) and need > self.bar.width()
        for w in self._figures:
            w.setVisible(not crowded)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.bar and event.type() == QEvent.Type.Resize:
            self._make_room(self.bar.currentMessage())
        return False

    def show_source(self, uri: str) -> None:
        """The source being monitored, its password hidden (the window may be shared)."""
        self.source_label.setText(redact(uri))

    def update_stats(self) -> None:
        """Once a second (friture's slow timer): fps shown, latency, drops, state."""
        s = self.presenter.stats()
        prev, self._last_stats = self._last_stats, s
        self.state_label.setText(s.state.value)
        if s.state in (State.RUNNING, State.PAUSED) and prev is not None:
            self.fps_label.setText(f"{s.fps_since(prev):.1f} fps")
        else:
            self.fps_label.setText("– fps")
        lat = s.latency_ema
        self.latency_label.setText(
            f"latency {1000 * lat:.0f} ms" if lat is not None else "latency –"
        )
        self.drops_label.setText(f"dropped {s.dropped} ({100.0 * (s.dropped_share or 0.0):.1f}%)")
        self.drops_label.setToolTip(
            f"{s.capture_drops} frames the analysis had no time for, {s.superseded} "
            f"results replaced before they were drawn, of {s.frames_read} frames captured; "
            f"{s.errors} frames failed"
        )

    def show_state(self, state: State) -> None:
        self.state_label.setText(state.value)
        if state is State.STARTING:
            self.backend_label.setText("loading models…")
            self.backend_label.setStyleSheet("")
        elif not self.presenter.backend:
            self.backend_label.setText("back end: –")
        if state is State.STOPPED:  # nothing is analysed now ("…to keep up" stayed)
            self.interval_label.setText("")

    def show_backend(self, backend: str) -> None:
        requested = self.requested_backend
        text, fallback = backend_text(backend, requested, self._gpu_expected)
        self.backend_label.setText(text)
        self.backend_label.setStyleSheet("color:#b36b00; font-weight:bold;" if fallback else "")
        tip = f"back end running: {backend} (asked for: {requested})"
        if fallback:
            tip += (
                "\nThe GPU back end could not start: `mesolive doctor` says why "
                "(TensorRT engine, onnxruntime-gpu, driver); the log names the reason."
            )
        self.backend_label.setToolTip(tip)

    def show_interval(self, interval: Interval) -> None:
        self.interval_label.setText(interval.text)
        self.interval_label.setToolTip(
            interval.reason or "set in the Settings tab (auto: raised or lowered to keep up)"
        )
