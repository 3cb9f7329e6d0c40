"""Recording the annotated session, and clips around alerts, off the GUI thread.

The window hands :meth:`SessionRecorder.add` each result it receives. The
recorder wraps it in a :class:`~mesolive.gui.exporter.FrameShot` (the result,
the overlay's line width and the sparkline scores of the faces in it:
immutable values only) and submits it to a
:class:`~mesolive.pipeline.recording.RecorderThread`, which draws the overlay
with the same :class:`~mesolive.gui.overlay.OverlayPainter` as the screen (on
a ``QImage`` of its own: painting on an image is allowed outside the GUI
thread), then encodes. Nothing is drawn or encoded in the GUI thread, and a
busy encoder drops frames instead of making the window wait.

The worker starts with the first recording or clip request and ends with the
window (an idle worker waits on its queue); while neither is on, frames are
not even queued. Its events come back as a queued signal, one message each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QImage

from mesolive.gui.exporter import FrameShot
from mesolive.gui.overlay import OverlayPainter
from mesolive.gui.presenter import Level
from mesolive.gui.tracks import Alert
from mesolive.gui.video_view import render_annotated
from mesolive.pipeline.recording import RecorderEvent, RecorderThread, timestamp
from mesolive.pipeline.video_file import CODECS, MIN_FREE_BYTES
from mesolive.types import FrameResult

log = logging.getLogger(__name__)

#: Default seconds kept before and after an alert in its clip.
CLIP_SECONDS = 5.0


def recording_stem(folder: Path) -> Path:
    """``folder/mesolive-<local time>``: a recording's path without its extension."""
    return folder / f"mesolive-{timestamp()}"


def qimage_to_bgr(img: QImage) -> np.ndarray:
    """An owned (H, W, 3) uint8 BGR copy of a ``QImage``."""
    img = img.convertToFormat(QImage.Format.Format_RGB32)  # B, G, R, 0xFF in memory
    w, h, stride = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), np.uint8, count=h * stride).reshape(h, stride)
    return cv2.cvtColor(buf[:, : 4 * w].reshape(h, w, 4), cv2.COLOR_BGRA2BGR)  # a copy


def render_shot(shot: FrameShot) -> tuple[float, np.ndarray]:
    """``(capture time, annotated BGR frame)``: the snapshot's drawing, in any thread."""
    overlay = OverlayPainter(line_width=shot.line_width)
    img = render_annotated(shot.result, overlay, dict(shot.history))
    return shot.result.frame.t_capture, qimage_to_bgr(img)


class SessionRecorder(QObject):
    """Session recording and alert clips of one window.

    Parameters
    ----------
    overlay
        The screen's overlay painter (its line width is copied per frame).
    history
        Track ID → recent fake scores, for the sparklines (read in the GUI thread).

    Signals
    -------
    message(object, str)
        A :class:`~mesolive.gui.presenter.Level` and one line to show.
    recording_changed(bool)
        A session recording started or ended (also when it failed).
    clips_changed(bool)
        Alert clips were turned off because their folder cannot be written.
    """

    message = Signal(object, str)
    recording_changed = Signal(bool)
    clips_changed = Signal(bool)
    _event = Signal(object)  # from the worker; queued into the GUI thread

    STOP_TIMEOUT = 5.0

    def __init__(
        self,
        overlay: OverlayPainter,
        history: Callable[[], Mapping[int, Sequence[float]]],
        parent: QObject | None = None,
        *,
        fps: float = 30.0,
        codecs: Sequence[tuple[str, str]] = CODECS,
        min_free: int = MIN_FREE_BYTES,
    ) -> None:
        super().__init__(parent)
        self.overlay = overlay
        self.history = history
        self.fps, self.codecs, self.min_free = fps, tuple(codecs), min_free
        self.recording = False
        self.clip_folder: Path | None = None
        self.events: list[RecorderEvent] = []  # every event of this window, oldest first
        self._thread: RecorderThread[FrameShot] | None = None
        self._event.connect(self._on_event)

    @property
    def active(self) -> bool:
        return self.recording or self.clip_folder is not None

    # -- control (GUI thread) ------------------------------------------------------------

    def start_recording(self, stem: Path) -> None:
        """Record every frame from the next one into ``stem`` + ``.mp4`` (or ``.avi``)."""
        self._worker().record(stem)
        self.recording = True
        self.recording_changed.emit(True)

    def stop_recording(self) -> None:
        """Finalise the recording; a message names the file."""
        if not self.recording or self._thread is None:
            return
        self.recording = False
        self._thread.stop_recording()
        self.recording_changed.emit(False)

    def end_session(self) -> None:
        """The session ended (stopped, or its source closed): finalise every file."""
        self.stop_recording()
        if self._thread is not None:
            self._thread.end_clips()

    def set_clips(self, folder: Path | None, seconds: float = CLIP_SECONDS) -> None:
        """Keep a clip ``seconds`` before and after each alert in ``folder``; None: off."""
        self.clip_folder = folder
        if folder is not None:
            self._worker().set_clips(folder, seconds)
        elif self._thread is not None:
            self._thread.set_clips(None)

    @Slot(object)
    def add(self, result: FrameResult) -> None:
        """Queue ``result`` for the recording and the clips (does nothing while both are off)."""
        if self._thread is None or not self.active:
            return
        for young, earlier in result.merged:  # a clip of the young face takes the earlier ID
            self._thread.fold(young, earlier)
        hist = self.history()
        faces = tuple(
            (f.track_id, tuple(hist[f.track_id])) for f in result.faces if f.track_id in hist
        )
        self._thread.submit(FrameShot(result, self.overlay.line_width, faces))

    @Slot(object)
    def mark_alert(self, alert: Alert) -> None:
        """An alert now: keep a clip around it (when clips are on)."""
        if self._thread is not None and self.clip_folder is not None:
            self._thread.mark(alert.track_id)

    def shutdown(self) -> bool:
        """Finalise every file and end the worker; True when it ended in time."""
        t, self._thread = self._thread, None
        self.recording = False
        self.clip_folder = None
        return t.stop(self.STOP_TIMEOUT) if t is not None else True

    # -- internals -------------------------------------------------------------------------

    def _worker(self) -> RecorderThread[FrameShot]:
        if self._thread is None:
            self._thread = RecorderThread(
                render_shot,
                self._event.emit,
                fps=self.fps,
                codecs=self.codecs,
                min_free=self.min_free,
            )
            self._thread.start()
        return self._thread

    @Slot(object)
    def _on_event(self, event: RecorderEvent) -> None:
        self.events.append(event)
        failed = event.kind in ("failed", "clip_failed", "clips_off")
        self.message.emit(Level.ERROR if failed else Level.INFO, event.message)
        if event.kind == "failed" and self.recording:  # the worker ended the recording
            self.recording = False
            self.recording_changed.emit(False)
        elif event.kind == "clips_off" and self.clip_folder is not None:
            self.clip_folder = None
            self.clips_changed.emit(False)
