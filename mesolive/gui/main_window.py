"""The main window: video with overlay, side panel, banners, status bar, actions."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStyle,
    QSystemTrayIcon,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from mesolive import paths
from mesolive.errors import MesoliveError
from mesolive.gui import settings as ui_settings
from mesolive.gui.alert_history import AlertHistory, report_files
from mesolive.gui.alert_panel import AlertPanel
from mesolive.gui.controls import ControlsPanel
from mesolive.gui.export_controller import ExportController
from mesolive.gui.keys import KeyGuard
from mesolive.gui.overlay_controller import OverlayController
from mesolive.gui.presenter import Level, Presenter, SessionStats, State
from mesolive.gui.recorder import SessionRecorder, recording_stem
from mesolive.gui.report import SessionInfo
from mesolive.gui.settings import UiSettings
from mesolive.gui.source_picker import SourcePickerDialog
from mesolive.gui.timeline import TimelinePanel
from mesolive.gui.tracks import Alert
from mesolive.gui.video_view import VideoView
from mesolive.pipeline.interval import Interval
from mesolive.types import FrameResult

log = logging.getLogger(__name__)

BACKEND_NAMES = {
    "tensorrt": "TensorRT",
    "onnxruntime-cuda": "ONNX Runtime (CUDA)",
    "onnxruntime-cpu": "ONNX Runtime (CPU)",
}
_GPU_BACKENDS = ("tensorrt", "onnxruntime-cuda")

_BANNER_STYLES = {
    Level.INFO: "background:#2d4f73; color:white;",
    Level.WARNING: "background:#b36b00; color:white;",
    Level.ERROR: "background:#a3161d; color:white;",
}


def backend_text(actual: str, requested: str, gpu_expected: bool) -> tuple[str, bool]:
    """Status-bar text for the back end, and whether it is a fallback to warn about.

    A fallback is a CPU back end where a GPU one was asked for, or where
    ``auto`` could have used a GPU this machine has. Several models may run on
    different back ends (``"tensorrt+onnxruntime-cpu"``): one on the CPU is
    a fallback too.
    """
    parts = [p for p in actual.split("+") if p] or ["?"]
    name = " + ".join(BACKEND_NAMES.get(p, p) for p in parts)
    wanted_gpu = requested in _GPU_BACKENDS or (requested == "auto" and gpu_expected)
    if wanted_gpu and any(p not in _GPU_BACKENDS for p in parts):
        asked = BACKEND_NAMES.get(requested, "a GPU back end")
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


class Banner(QFrame):
    """A one-line coloured message across the top of the video, with buttons.

    ``action`` is the banner's own button (``action_text``); ``settings``, the
    "Model folder…" button, leads to the model folder in the Settings tab.
    """

    action_clicked = Signal()
    settings_clicked = Signal()

    def __init__(self, action_text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.action = QPushButton(action_text)
        self.action.setVisible(bool(action_text))
        self.action.clicked.connect(self.action_clicked.emit)
        self.settings = QPushButton("Model folder…")
        self.settings.setToolTip("set the folder the models are read from (Settings tab)")
        self.settings.setVisible(False)
        self.settings.clicked.connect(self.settings_clicked.emit)
        self.close_button = QPushButton("Dismiss")
        self.close_button.clicked.connect(self.hide)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 10, 6)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.action)
        lay.addWidget(self.settings)
        lay.addWidget(self.close_button)
        self.level = Level.INFO
        self.hide()

    def show_message(
        self, level: Level, text: str, *, action: bool = False, settings: bool = False
    ) -> None:
        if not text:
            self.hide()
            return
        self.level = level
        self.setStyleSheet(
            f"Banner {{{_BANNER_STYLES[level]}}} QLabel {{color:white; font-weight:bold;}}"
        )
        self.label.setText(text)
        self.action.setVisible(action and bool(self.action.text()))
        self.settings.setVisible(settings)
        self.show()


class MainWindow(QMainWindow):
    """The app window. Give it the parsed command line and a QSettings."""

    STATS_INTERVAL_MS = 1000
    PANEL_INTERVAL_MS = 250
    RESTART_DELAY_MS = 600
    EXPORT_JOIN_TIMEOUT = 10.0  # seconds the window waits at close for a report being written

    def __init__(self, args: Any, qsettings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.args = args
        self.qsettings = qsettings
        self.settings: UiSettings = ui_settings.apply_cli(ui_settings.load(qsettings), args)
        self.setWindowTitle("mesolive: deepfake monitor")
        self.presenter = Presenter(self)
        self.presenter.set_rule(self.settings.threshold, self.settings.alert_seconds)
        self._gpu_expected = gpu_expected()
        self.overlay = OverlayController(self.presenter, self.presenter.tracks.recent_scores, self)
        self._tray: QSystemTrayIcon | None = None
        self._last_stats: SessionStats | None = None  # the status bar's previous figures
        self._shut_down: bool | None = None
        self._panel_key: tuple[int, float, int, float | None] | None = None

        self._build_widgets()
        self.exporter = ExportController(
            self.presenter,
            self.video,
            self.session_info,
            lambda: report_files(self.alerts.snapshot()),
            self,
        )
        self._build_actions()
        self.key_guard = KeyGuard(self)  # single-key shortcuts stay out of text fields
        self._connect()
        self._restore_geometry()
        self._update_actions()

    # -- construction -------------------------------------------------------------------

    def _build_widgets(self) -> None:
        self.video = VideoView()
        self.video.history = self.presenter.tracks.recent_scores
        self.banner = Banner("Choose another source…")
        self.alert_banner = Banner()
        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.alert_banner)
        lay.addWidget(self.banner)
        lay.addWidget(self.video, 1)

        self.timeline = TimelinePanel()
        self.controls = ControlsPanel(self.settings)
        forced = paths.model_dir_override(getattr(self.args, "model_dir", None))
        if forced is not None:  # wins over the kept folder for this run (not kept)
            cli = getattr(self.args, "model_dir", None)
            given_by = "--model-dir" if cli else "MESOLIVE_MODEL_DIR"
            self.controls.model_folder.force(forced, given_by)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.controls)
        self.settings_scroll = scroll
        self.side = QTabWidget()
        self.side.addTab(self.timeline, "Faces")
        self.side.addTab(scroll, "Settings")
        self.alerts = AlertHistory()
        self.alert_panel = AlertPanel(self.alerts, self.presenter.tracks)
        self.side.addTab(self.alert_panel, "Alerts")
        self.recorder = SessionRecorder(
            self.video.overlay, self.presenter.tracks.recent_scores, self
        )
        self.record_folder: Path | None = None  # asked once a run, for recordings and clips
        self.side.setMinimumWidth(300)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.side)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([900, 380])
        self.setCentralWidget(self.splitter)

        sb = self.statusBar()
        self.state_label = QLabel("idle")
        self.source_label = QLabel("no source")
        self.backend_label = QLabel("back end: –")
        self.fps_label = QLabel("– fps")
        self.latency_label = QLabel("latency –")
        self.drops_label = QLabel("dropped –")
        self.interval_label = QLabel("")  # "analysing every 3rd frame to keep up"
        sb.addWidget(self.state_label)
        sb.addWidget(self.source_label, 1)
        labels = (self.backend_label, self.fps_label, self.latency_label, self.drops_label)
        for w in (*labels, self.interval_label):
            sb.addPermanentWidget(w)

        self.stats_timer = QTimer(self)
        self.stats_timer.setInterval(self.STATS_INTERVAL_MS)
        self.stats_timer.timeout.connect(self.update_stats)
        self.stats_timer.start()
        self.panel_timer = QTimer(self)
        self.panel_timer.setInterval(self.PANEL_INTERVAL_MS)
        self.panel_timer.timeout.connect(self._refresh_panel)
        self.panel_timer.start()
        self.restart_timer = QTimer(self)
        self.restart_timer.setSingleShot(True)
        self.restart_timer.setInterval(self.RESTART_DELAY_MS)
        self.restart_timer.timeout.connect(self._restart_if_running)

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
            "&Record video…", "Ctrl+R", self.set_recording, sp.SP_DialogNoButton, checkable=True
        )
        self.act_panel = self._action("Side &panel", "Ctrl+B", self._toggle_panel, checkable=True)
        self.act_panel.setChecked(True)
        self.act_fullscreen = self._action("&Full screen", "F11", self._toggle_fullscreen)
        self.act_quit = self._action("&Quit", "Ctrl+Q", self.close)
        self.act_shortcuts = self._action("&Keyboard shortcuts", "F1", self.show_shortcuts)

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
        p.backend_changed.connect(self._on_backend)
        p.interval_changed.connect(self._on_interval)
        p.alert_raised.connect(self.on_alert)
        p.alert_raised.connect(self.alerts.add_alert)  # before the result that raised it
        p.alert_raised.connect(self.recorder.mark_alert)
        p.result_ready.connect(self.alerts.add_result)
        p.result_ready.connect(self.recorder.add)
        p.state_changed.connect(self._on_session_state)
        self.recorder.message.connect(self._on_recorder_message)
        self.recorder.recording_changed.connect(lambda on: self._set_checked(self.act_record, on))
        self.recorder.clips_changed.connect(
            lambda on: self._set_checked(self.alert_panel.clips, on)
        )
        self.alert_panel.clips_changed.connect(self.set_alert_clips)
        self.exporter.status.connect(self.statusBar().showMessage)
        self.exporter.failed.connect(lambda text: self.banner.show_message(Level.ERROR, text))
        self.banner.action_clicked.connect(self.choose_source)
        self.banner.settings_clicked.connect(self.show_model_folder)
        self.controls.pipeline_changed.connect(self._on_pipeline_settings)
        self.controls.threshold_changed.connect(self._on_threshold)
        self.controls.alerts_changed.connect(self._on_alert_settings)
        self.controls.loop_files.toggled.connect(lambda _b: self._on_pipeline_settings())

    # -- session --------------------------------------------------------------------------

    def pipeline_config(self) -> Any:
        """The :class:`PipelineConfig` of the current controls and command line."""
        from mesolive.pipeline.pipeline import PipelineConfig

        s = self.controls.store(self.settings)
        a = self.args
        return PipelineConfig(
            models=tuple(s.models),
            detector=getattr(a, "detector", None),
            det_size=s.det_size or None,
            every=s.every or 1,  # 0 = auto: start at every frame
            threshold=s.threshold,
            alert_seconds=s.alert_seconds,
            **({"reid_seconds": r} if (r := getattr(a, "reid_seconds", None)) is not None else {}),
            backend=getattr(a, "backend", "auto") or "auto",
            model_dir=self.model_dir(),
            threads=getattr(a, "threads", None),
        )

    def model_dir(self) -> str | None:
        """The model folder of the next start: the option, else the variable, else the kept one."""
        forced = paths.model_dir_override(getattr(self.args, "model_dir", None))
        if forced is not None:
            return str(forced)
        return self.controls.model_folder.value or None

    def start_source(self, uri: str) -> bool:
        """Start monitoring ``uri`` (replacing what runs). False if it failed at once."""
        uri = uri.strip()
        if not uri:
            return False
        self.settings.remember_source(uri)
        self.banner.hide()
        self.alert_banner.hide()
        self.timeline.clear()
        self.video.clear("Starting…")
        self.source_label.setText(uri)
        try:
            config = self.pipeline_config()
        except (MesoliveError, ValueError) as e:
            self._on_message(Level.ERROR, str(e))
            return False
        ok = self.presenter.start(
            uri, config, loop=self.settings.loop_files, auto_every=self.settings.every == 0
        )
        if self.overlay.active:
            self.set_overlay_mode(True)  # over the new source, or off with the reason
        return ok

    def start(self) -> None:
        if self.presenter.state is State.PAUSED:
            self.presenter.set_paused(False)
        elif not self.presenter.running:
            if self.settings.source:
                self.start_source(self.settings.source)
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
                self.start_source(dlg.uri())

        dlg.finished.connect(done)
        dlg.open()
        self.source_dialog = dlg

    def _on_pipeline_settings(self) -> None:
        self.controls.store(self.settings)
        if self.presenter.running:
            self.restart_timer.start()  # debounced: a spin box emits per step

    def _restart_if_running(self) -> None:
        if self.presenter.running and self.presenter.uri:
            self.start_source(self.presenter.uri)

    def _on_threshold(self, value: float) -> None:
        # To the pipeline only: what is drawn follows the results judged with it.
        self.settings.threshold = value
        self.presenter.set_rule(value, self.settings.alert_seconds)

    def _on_alert_settings(self) -> None:
        self.controls.store(self.settings)
        self.presenter.set_rule(self.settings.threshold, self.settings.alert_seconds)

    # -- results and messages -------------------------------------------------------------

    def _on_result(self, result: FrameResult) -> None:
        if self.video.set_result(result):
            self.presenter.note_superseded()
        self.overlay.set_result(result)

    def _on_message(self, level: Level, text: str) -> None:
        if not text:
            if self.banner.level is not Level.ERROR:
                self.banner.hide()
            return
        source_error = level is Level.ERROR and self.presenter.last_error_source
        model_error = level is Level.ERROR and not source_error  # models or back end
        self.banner.show_message(level, text, action=source_error, settings=model_error)
        if source_error:
            self.video.clear(text + "\n\nPress Ctrl+O to choose another source.")
        elif model_error:
            self.video.clear(
                text + "\n\nCheck the models and the model folder in the Settings tab "
                "(Model folder… above), then press F5."
            )
        self.statusBar().showMessage(text, 10000)

    def _on_interval(self, interval: Interval) -> None:
        self.interval_label.setText(interval.text)
        self.interval_label.setToolTip(
            interval.reason or "set in the Settings tab (auto: raised or lowered to keep up)"
        )

    def _on_backend(self, backend: str) -> None:
        requested = getattr(self.args, "backend", "auto") or "auto"
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

    def on_alert(self, alert: Alert) -> None:
        """Banner always; sound and desktop notification as the settings say."""
        self.alert_banner.show_message(Level.ERROR, "⚠ " + alert.message)
        if self.settings.alert_sound:
            QApplication.beep()  # Qt Multimedia is not in PySide6-Essentials
        if self.settings.alert_notify and QSystemTrayIcon.isSystemTrayAvailable():
            if self._tray is None:
                self._tray = QSystemTrayIcon(self.windowIcon(), self)
                if self._tray.icon().isNull():
                    self._tray.setIcon(
                        self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
                    )
                self._tray.show()
            self._tray.showMessage(
                "mesolive", alert.message, QSystemTrayIcon.MessageIcon.Warning, 8000
            )

    # -- periodic refresh -------------------------------------------------------------------

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

    def _refresh_panel(self) -> None:
        tracks = self.presenter.tracks
        key = (id(tracks), tracks.t_last, len(tracks.tracks), tracks.threshold)
        if key == self._panel_key:
            return  # nothing new since the last refresh (stopped, paused)
        if self.side.isVisible() and self.side.currentWidget() is self.timeline:
            self.timeline.refresh(tracks)
            self._panel_key = key

    def _update_actions(self) -> None:
        state = self.presenter.state
        running = self.presenter.running
        self.act_start.setEnabled(state is not State.RUNNING and state is not State.STARTING)
        self.act_pause.setEnabled(state in (State.RUNNING, State.PAUSED))
        self.act_pause.setText("Resume" if state is State.PAUSED else "&Pause")
        self.act_stop.setEnabled(running)
        self.state_label.setText(state.value)
        if state is State.STARTING:
            self.backend_label.setText("loading models…")
            self.backend_label.setStyleSheet("")
        elif not self.presenter.backend:
            self.backend_label.setText("back end: –")

    # -- exports ---------------------------------------------------------------------------

    def session_info(self) -> SessionInfo:
        s = self.settings
        return SessionInfo(
            source=self.presenter.uri,
            models=tuple(s.models),
            threshold=self.presenter.judged_threshold,
            backend=self.presenter.backend,
            started=self.presenter.counters.started,
            every=self.presenter.interval.every,  # in force now (auto moves it)
            det_size=s.det_size or None,
        )

    def save_snapshot(self, path: str | None = None) -> Path | None:
        return self.exporter.save_snapshot(path)

    def export_report(self, folder: str | None = None) -> bool:
        """Start exporting the session report (see :meth:`ExportController.export_report`)."""
        return self.exporter.export_report(folder)

    # -- alert history and recording ----------------------------------------------------

    def _on_session_state(self, state: State) -> None:
        """A new session starts a new alert history; an ended one ends its recording."""
        if state is State.STARTING:
            self.alerts.clear()
        elif state is State.STOPPED:
            self.alerts.finish()
            self.recorder.end_session()  # also when the source closed: files are finalised

    def _ask_folder(self, title: str, folder: Path | None) -> Path | None:
        if folder is None and self.record_folder is None:
            chosen = QFileDialog.getExistingDirectory(self, title)
            folder = Path(chosen) if chosen else None
        self.record_folder = folder or self.record_folder
        return self.record_folder

    def set_recording(self, on: bool, folder: Path | None = None) -> None:
        """Record the annotated session into ``folder`` (asked once a run), or stop."""
        if not on:
            self.recorder.stop_recording()
            return
        folder = self._ask_folder("Record the session into", folder)
        if folder is None:
            self._set_checked(self.act_record, False)
            return
        self.recorder.start_recording(recording_stem(folder))

    def set_alert_clips(self, on: bool, seconds: float, folder: Path | None = None) -> None:
        """Keep a clip around each alert in ``folder`` (asked once a run), or stop keeping them."""
        folder = self._ask_folder("Save alert clips into", folder) if on else None
        if on and folder is None:
            self._set_checked(self.alert_panel.clips, False)
        self.recorder.set_clips(folder, seconds)

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
        self._set_checked(self.act_overlay, self.overlay.active)

    @staticmethod
    def _set_checked(act: QAction, on: bool) -> None:
        act.blockSignals(True)
        act.setChecked(on)
        act.blockSignals(False)

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

    def show_shortcuts(self) -> None:
        rows = [
            (a.text().replace("&", ""), a.shortcut().toString())
            for a in self.actions()
            if not a.shortcut().isEmpty()
        ]
        text = "\n".join(f"{key:<12} {name}" for name, key in rows)
        box = QMessageBox(
            QMessageBox.Icon.Information,
            "Keyboard shortcuts",
            text,
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setStyleSheet("QLabel{font-family: monospace;}")
        box.open()

    # -- settings and shutdown ---------------------------------------------------------------

    def _restore_geometry(self) -> None:
        geo = self.qsettings.value("window/geometry")
        if isinstance(geo, QByteArray) and not geo.isEmpty():
            self.restoreGeometry(geo)
        else:
            self.resize(1320, 800)
        split = self.qsettings.value("window/splitter")
        if isinstance(split, QByteArray) and not split.isEmpty():
            self.splitter.restoreState(split)

    def save_settings(self) -> None:
        self.controls.store(self.settings)
        ui_settings.save(self.qsettings, self.settings)
        self.qsettings.setValue("window/geometry", self.saveGeometry())
        self.qsettings.setValue("window/splitter", self.splitter.saveState())
        self.qsettings.sync()

    def shutdown(self) -> bool:
        """Stop capture, then inference, then save settings. True if no thread is left.

        Idempotent: the close event and the app's exit both call it.
        """
        if self._shut_down is not None:
            return self._shut_down
        for t in (self.stats_timer, self.panel_timer, self.restart_timer):
            t.stop()
        ok = self.presenter.shutdown()
        ok = self.exporter.join(self.EXPORT_JOIN_TIMEOUT) and ok  # a report being written
        ok = self.recorder.shutdown() and ok  # finalises a recording and open clips
        self.overlay.stop()
        if self._tray is not None:
            self._tray.hide()
        self.save_settings()
        self._shut_down = ok
        return ok

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        event.accept()
