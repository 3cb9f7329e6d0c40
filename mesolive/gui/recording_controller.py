"""Recording (Ctrl+R) and alert clips, wired to the session and the window.

:class:`~mesolive.gui.recorder.SessionRecorder` draws and encodes; this
asks for the folder (once a run, the same for recordings and clips), feeds
the recorder the session's results and alerts, and finalises its files when
the session ends (stopped, or its source ended or failed). A new session
(another source, or settings that restart it) while recording goes on into
a file of its own: one file never holds two sessions, whose frame sizes may
differ (a 4:3 clip was stretched into the 16:9 recording before it). The
same holds for alert clips: a clip open when a new session starts ends
there, and the frames held for the next clip are the new session's.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from mesolive.gui.overlay import OverlayPainter
from mesolive.gui.presenter import Presenter, State
from mesolive.gui.recorder import SessionRecorder, recording_stem

LIVE_STATES = (State.STARTING, State.RUNNING, State.PAUSED)  # a session is on


class RecordingController(QObject):
    """The window's recording and alert clips.

    Signals
    -------
    recording_changed(bool)
        A recording started or ended, also when it failed or no folder was chosen.
    clips_changed(bool)
        Clips were turned off: no folder was chosen, or it cannot be written.
    """

    recording_changed = Signal(bool)
    clips_changed = Signal(bool)

    def __init__(self, presenter: Presenter, overlay: OverlayPainter, window: QWidget) -> None:
        super().__init__(window)
        self._window = window
        self.folder: Path | None = None  # asked once a run, for recordings and clips
        self._state = State.IDLE
        self.recorder = SessionRecorder(overlay, presenter.tracks.recent_scores, self)
        self.recorder.recording_changed.connect(self.recording_changed)
        self.recorder.clips_changed.connect(self.clips_changed)
        presenter.alert_raised.connect(self.recorder.mark_alert)
        presenter.result_ready.connect(self.recorder.add)
        presenter.state_changed.connect(self._on_state)

    def set_recording(self, on: bool, folder: Path | None = None) -> None:
        """Record the annotated session into ``folder`` (asked once a run), or stop."""
        if not on:
            self.recorder.stop_recording()
            return
        folder = self._ask_folder("Record the session into", folder)
        if folder is None:
            self.recording_changed.emit(False)
            return
        self.recorder.start_recording(recording_stem(folder))

    def set_alert_clips(self, on: bool, seconds: float, folder: Path | None = None) -> None:
        """Keep a clip around each alert in ``folder`` (asked once a run), or stop keeping them."""
        folder = self._ask_folder("Save alert clips into", folder) if on else None
        if on and folder is None:
            self.clips_changed.emit(False)
        self.recorder.set_clips(folder, seconds)

    def shutdown(self) -> bool:
        """Finalise a recording and open clips; True when the recorder ended in time."""
        return self.recorder.shutdown()

    def _ask_folder(self, title: str, folder: Path | None) -> Path | None:
        if folder is None and self.folder is None:
            chosen = QFileDialog.getExistingDirectory(self._window, title)
            folder = Path(chosen) if chosen else None
        self.folder = folder or self.folder
        return self.folder

    def _on_state(self, state: State) -> None:
        was, self._state = self._state, state
        if state is State.STOPPED:
            self.recorder.end_session()  # also when the source closed: files are finalised
        elif state is State.STARTING and was in LIVE_STATES and self.recorder.active:
            recording = self.recorder.recording
            self.recorder.end_session()  # the last session's file and clips are finalised
            if recording and self.folder is not None:
                self.recorder.start_recording(recording_stem(self.folder))
