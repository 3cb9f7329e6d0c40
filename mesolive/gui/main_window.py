"""The main window: video with overlay, side panel, banners, status bar, actions."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QSettings, QSignalBlocker, Qt
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QHideEvent,
    QKeySequence,
    QMoveEvent,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractButton,
    QDialog,
    QMainWindow,
    QScrollArea,
    QSplitter,
    QStyle,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from mesolive.errors import MesoliveError
from mesolive.gui.about import show_about
from mesolive.gui.alert_controller import AlertController
from mesolive.gui.banner import Banner
from mesolive.gui.export_controller import ExportController
from mesolive.gui.keys import KeyGuard, show_shortcuts
from mesolive.gui.overlay_controller import OverlayController
from mesolive.gui.presenter import Level, Presenter, State
from mesolive.gui.recording_controller import RecordingController
from mesolive.gui.report import SessionInfo
from mesolive.gui.session_status import SessionStatus
from mesolive.gui.settings_controller import SettingsController
from mesolive.gui.source_picker import SourcePickerDialog
from mesolive.gui.timeline import TimelinePanel
from mesolive.gui.unexported import UnexportedAlerts
from mesolive.gui.video_view import VideoView
from mesolive.redact import redact
from mesolive.sources.screen import Region, hide_own_windows
from mesolive.types import FrameResult


def _set_checked(item: QAction | QAbstractButton, on: bool) -> None:
    """Tick or untick ``item`` without its ``toggled`` signal (the state came from elsewhere)."""
    with QSignalBlocker(item):
        item.setChecked(on)


class MainWindow(QMainWindow):
    """The app window. Give it the parsed command line and a QSettings.

    It lays out the widgets and owns the actions; the parts are its
    controllers: :attr:`config` (settings and command line),
    :attr:`status` (status bar), :attr:`alerts`, :attr:`recording`,
    :attr:`exporter`, :attr:`unexported` (asks before alerts are discarded)
    and :attr:`overlay`.
    """

    EXPORT_JOIN_TIMEOUT = 10.0  # seconds the window waits at close for files being written

    def __init__(self, args: Any, qsettings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.args = args
        self.setWindowTitle("mesolive: deepfake monitor")
        self.presenter = Presenter(self)
        self.config = SettingsController(args, qsettings, self.presenter, self)
        self.settings = self.config.settings
        self.controls = self.config.controls
        self.overlay = OverlayController(self.presenter, self.presenter.tracks.recent_scores, self)
        self.alerts = AlertController(self.presenter, self.settings, self)
        self._shut_down: bool | None = None

        self._build_widgets()
        self.status = SessionStatus(
            self.statusBar(), self.presenter, getattr(args, "backend", "auto") or "auto"
        )
        self.recording = RecordingController(self.presenter, self.video.overlay, self)
        self.exporter = ExportController(
            self.presenter, self.video, self.session_info, self.alerts.report_files, self
        )
        self.unexported = UnexportedAlerts(
            self.alerts.history, self.exporter, self.presenter, self.export_report, self
        )
        self._build_actions()
        self.key_guard = KeyGuard(self)  # single-key shortcuts stay out of text fields
        self._connect()
        self.config.restore_window(self, self.splitter)
        self._update_actions()

    # -- construction -------------------------------------------------------------------

    def _build_widgets(self) -> None:
        self.video = VideoView()
        self.video.history = self.presenter.tracks.recent_scores
        self.presenter.scaler = self.video.scaler  # frames are scaled by the inference thread
        self.banner = Banner("Choose another source…")
        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.alerts.banner)
        lay.addWidget(self.banner)
        lay.addWidget(self.video, 1)

        self.timeline = TimelinePanel(self.presenter.tracks)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.controls)
        self.settings_scroll = scroll
        self.side = QTabWidget()
        self.side.addTab(self.timeline, "Faces")
        self.side.addTab(scroll, "Settings")
        self.side.addTab(self.alerts.panel, "Alerts")
        self.side.setMinimumWidth(300)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.side)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([900, 380])
        self.setCentralWidget(self.splitter)

    def _action(
        self,
        text: str,
        shortcut: str | QKeySequence.StandardKey | None,
        slot: Any,
        icon: QStyle.StandardPixmap | None = None,
        checkable: bool = False,
    ) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))  # window context: not inside dialogs
        if icon is not None:
            act.setIcon(self.style().standardIcon(icon))
        act.setCheckable(checkable)
        (act.toggled if checkable else act.triggered).connect(slot)
        self.addAction(act)
        return act

    def _build_actions(self) -> None:
        sp = QStyle.StandardPixmap
        self.act_source = self._action(
            "Choose &source…", "Ctrl+O", self.choose_source, sp.SP_DirOpenIcon
        )
        self.act_start = self._action("&Start", "F5", self.start, sp.SP_MediaPlay)
        self.act_pause = self._action("&Pause", "Space", self.toggle_pause, sp.SP_MediaPause)
        self.act_stop = self._action("S&top", "Shift+F5", self.stop, sp.SP_MediaStop)
        self.act_snapshot = self._action(
            "Save s&napshot…", "Ctrl+S", self.save_snapshot, sp.SP_DialogSaveButton
        )
        self.act_export = self._action(
            "&Export session report…", "Ctrl+E", self.export_report, sp.SP_FileDialogDetailedView
        )
        self.act_overlay = self._action(
            "&Overlay mode",
            "Ctrl+T",
            self.set_overlay_mode,
            sp.SP_TitleBarNormalButton,
            checkable=True,
        )
        self.act_record = self._action(
            "&Record video…",
            "Ctrl+R",
            self.recording.set_recording,
            sp.SP_DialogNoButton,
            checkable=True,
        )
        self.act_panel = self._action("Side &panel", "Ctrl+B", self._toggle_panel, checkable=True)
        self.act_panel.setChecked(True)
        self.act_fullscreen = self._action("&Full screen", "F11", self._toggle_fullscreen)
        self.act_quit = self._action("&Quit", "Ctrl+Q", self.close)  # asks about alerts
        self.act_shortcuts = self._action("&Keyboard shortcuts", "F1", lambda: show_shortcuts(self))
        self.act_about = self._action("&About mesolive", None, lambda: show_about(self))

        menu = self.menuBar()
        m = menu.addMenu("&File")
        for a in (self.act_source, self.act_snapshot, self.act_export):
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = menu.addMenu("&Session")
        for a in (self.act_start, self.act_pause, self.act_stop, self.act_record):
            m.addAction(a)
        m = menu.addMenu("&View")
        for a in (self.act_overlay, self.act_panel, self.act_fullscreen):
            m.addAction(a)
        m = menu.addMenu("&Help")
        m.addAction(self.act_shortcuts)
        m.addAction(self.act_about)

        short = {
            self.act_source: "Source",
            self.act_snapshot: "Snapshot",
            self.act_export: "Report",
            self.act_overlay: "Overlay",
            self.act_record: "Record",
        }
        for act, text in short.items():
            act.setIconText(text)
        tb = self.addToolBar("Session")
        tb.setObjectName("session-toolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for a in (self.act_source, self.act_start, self.act_pause, self.act_stop):
            tb.addAction(a)
        tb.addSeparator()
        for a in (self.act_snapshot, self.act_export, self.act_record, self.act_overlay):
            tb.addAction(a)

    def _connect(self) -> None:
        p = self.presenter
        p.result_ready.connect(self._on_result)
        self.video.painted_callbacks.append(p.note_painted)
        p.state_changed.connect(lambda _s: self._update_actions())
        p.message.connect(self._on_message)
        p.source_lost.connect(self._on_source_lost)
        rec = self.recording
        rec.recorder.message.connect(self._on_recorder_message)
        rec.recording_changed.connect(lambda on: _set_checked(self.act_record, on))
        rec.clips_changed.connect(lambda on: _set_checked(self.alerts.panel.clips, on))
        self.alerts.panel.clips_changed.connect(rec.set_alert_clips)
        self.exporter.status.connect(self.statusBar().showMessage)
        self.exporter.failed.connect(lambda text: self.banner.show_message(Level.ERROR, text))
        self.unexported.status.connect(self.statusBar().showMessage)
        self.banner.action_clicked.connect(self.choose_source)
        self.banner.settings_clicked.connect(self.show_model_folder)
        self.config.restart_needed.connect(self._restart_if_running)

    # -- session --------------------------------------------------------------------------

    def start_source(self, uri: str) -> bool:
        """Start monitoring ``uri`` (replacing what runs). False if it failed at once."""
        uri = uri.strip()
        if not uri:
            return False
        self.settings.remember_source(uri)
        self.banner.hide()
        self.alerts.banner.hide()
        self.timeline.clear()
        self.video.clear("Starting…")
        self.status.show_source(uri)
        try:
            config = self.config.pipeline_config()
        except (MesoliveError, ValueError) as e:
            self._on_message(Level.ERROR, str(e))
            return False
        ok = self.presenter.start(
            uri, config, loop=self.settings.loop_files, auto_every=self.settings.every == 0
        )
        if self.overlay.active:
            self.set_overlay_mode(True)  # over the new source, or off with the reason
        return ok

    def open_source(
        self, uri: str, doing: str = "Starting a new session", kept: str = "Nothing was discarded"
    ) -> None:
        """Start ``uri`` as the user asked, once the alerts a new session discards are
        exported or given up (:class:`UnexportedAlerts`; ``kept``: what the status bar
        says when they are kept instead)."""
        if not self.unexported.ask(doing, lambda: self.start_source(uri), kept):
            self.start_source(uri)

    def start(self) -> None:
        if self.presenter.state is State.PAUSED:
            self.presenter.set_paused(False)
        elif not self.presenter.running:
            if self.settings.source:
                self.open_source(self.settings.source)
            else:
                self.choose_source()

    def toggle_pause(self) -> None:
        if self.presenter.state is State.RUNNING:
            self.presenter.set_paused(True)
        elif self.presenter.state is State.PAUSED:
            self.presenter.set_paused(False)

    def stop(self) -> None:
        self.presenter.stop()

    def choose_source(self) -> None:
        """Open the source picker (non-blocking); start the source picked."""
        dlg = SourcePickerDialog(self.settings.source, self.settings.recent_sources, self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)

        def done(code: int) -> None:
            if code == QDialog.DialogCode.Accepted and dlg.uri():
                self.open_source(dlg.uri())

        dlg.finished.connect(done)
        dlg.open()
        self.source_dialog = dlg

    def _restart_if_running(self) -> None:
        if self.presenter.running and self.presenter.uri:
            self.open_source(
                self.presenter.uri,
                "Restarting the session with the new settings",
                "The session goes on with the settings it started with; "
                "the new ones apply when it starts again",
            )

    # -- results and messages -------------------------------------------------------------

    def _on_result(self, result: FrameResult) -> None:
        if self.video.set_result(result):
            self.presenter.note_superseded()
        self.overlay.set_result(result)

    def _on_source_lost(self, why: str) -> None:
        self.video.set_lost(why)
        if why:  # the overlay's boxes are of the last frame too
            self.overlay.clear()

    def _on_message(self, level: Level, text: str) -> None:
        if not text:
            if self.banner.level is not Level.ERROR:
                self.banner.hide()
            return
        source_error = level is Level.ERROR and self.presenter.last_error_source
        model_error = level is Level.ERROR and not source_error  # models or back end
        self.banner.show_message(level, text, action=source_error, settings=model_error)
        if source_error:
            self.settings.forget_source(self.presenter.uri)
            self.video.clear(text + "\n\nPress Ctrl+O to choose another source.", keep_last=True)
        elif model_error:
            self.video.clear(
                text + "\n\nCheck the models and the model folder in the Settings tab "
                "(Model folder… above), then press F5.",
                keep_last=True,
            )
        self.statusBar().showMessage(text, 10000)

    def _update_actions(self) -> None:
        state = self.presenter.state
        running = self.presenter.running
        self.act_start.setEnabled(state is not State.RUNNING and state is not State.STARTING)
        self.act_pause.setEnabled(state in (State.RUNNING, State.PAUSED))
        self.act_pause.setText("Resume" if state is State.PAUSED else "&Pause")
        self.act_stop.setEnabled(running)

    # -- exports ---------------------------------------------------------------------------

    def session_info(self) -> SessionInfo:
        s = self.settings
        return SessionInfo(
            source=redact(self.presenter.uri),  # reports are shared
            models=tuple(s.models),
            threshold=self.presenter.judged_threshold,
            backend=self.presenter.backend,
            started=self.presenter.counters.started,
            every=self.presenter.interval.every,  # in force now (auto moves it)
            det_size=self.presenter.det_size or None,
        )

    def save_snapshot(self, path: str | None = None) -> bool:
        """Start saving a snapshot (see :meth:`ExportController.save_snapshot`)."""
        return self.exporter.save_snapshot(path)

    def export_report(self, folder: str | None = None) -> bool:
        """Start exporting the session report (see :meth:`ExportController.export_report`)."""
        started = self.exporter.export_report(folder)
        if started:
            self.unexported.export_started()
        return started

    # -- recording ---------------------------------------------------------------------

    def _on_recorder_message(self, level: Level, text: str) -> None:
        if level is Level.ERROR:  # one message in the window; the session goes on
            self.banner.show_message(level, text)
        self.statusBar().showMessage(text, 10000)

    # -- view ------------------------------------------------------------------------------

    def set_overlay_mode(self, on: bool) -> None:
        """Show or hide the click-through overlay over the running source's region."""
        problem = self.overlay.start(self.video.result) if on else None
        if not on:
            self.overlay.stop()
        if problem:
            self.statusBar().showMessage(f"overlay mode: {problem}", 10000)
            self.banner.show_message(Level.WARNING, f"Overlay mode: {problem}")
        _set_checked(self.act_overlay, self.overlay.active)

    def show_model_folder(self) -> None:
        """Open the Settings tab at the model folder, with the keyboard in it."""
        self.act_panel.setChecked(True)  # shows the side panel
        self.side.setCurrentWidget(self.settings_scroll)
        self.settings_scroll.ensureWidgetVisible(self.controls.model_folder)
        self.controls.model_folder.focus()

    def _toggle_panel(self, on: bool) -> None:
        self.side.setVisible(on)

    def _toggle_fullscreen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()

    # -- settings and shutdown ---------------------------------------------------------------

    def shutdown(self) -> bool:
        """Stop capture, then inference, then save settings. True if no thread is left.

        Idempotent: the close event and the app's exit both call it.
        """
        if self._shut_down is not None:
            return self._shut_down
        for t in (self.status.timer, self.timeline.timer):
            t.stop()
        self.config.stop()
        ok = self.presenter.shutdown()
        ok = self.exporter.join(self.EXPORT_JOIN_TIMEOUT) and ok  # a report or a snapshot
        ok = self.recording.shutdown() and ok  # finalises a recording and open clips
        self.overlay.stop()
        self.alerts.close()
        self.config.save(self, self.splitter)
        hide_own_windows(())
        self._shut_down = ok
        return ok

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._shut_down is None and self.unexported.ask("Quitting", self.close_now):
            event.ignore()  # closed again once the alerts are exported or discarded
            return
        self.shutdown()
        event.accept()

    def close_now(self) -> None:
        """Close without asking about unexported alerts (a quit signal, the testing hooks)."""
        self.unexported.waive()
        self.close()

    # -- out of screen captures ----------------------------------------------------------

    def _hide_from_capture(self) -> None:
        """Black this window out of screen captures (:func:`hide_own_windows`): captured,
        it would show the capture again, and its faces would be judged twice."""
        if not self.isVisible() or self.isMinimized():
            hide_own_windows(())
            return
        g, dpr = self.frameGeometry(), self.devicePixelRatioF() or 1.0  # mss counts pixels
        x, y, w, h = (round(v * dpr) for v in (g.x(), g.y(), g.width(), g.height()))
        hide_own_windows((Region(x, y, w, h),))

    def moveEvent(self, event: QMoveEvent) -> None:
        super().moveEvent(event)
        self._hide_from_capture()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._hide_from_capture()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._hide_from_capture()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        hide_own_windows(())

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() is QEvent.Type.WindowStateChange:  # minimised or back
            self._hide_from_capture()
