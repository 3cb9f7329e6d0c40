"""The main window: video with overlay, side panel, banners, status bar, actions."""

from __future__ import annotations

import logging
import time
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

from mesolive.errors import MesoliveError
from mesolive.gui import settings as ui_settings
from mesolive.gui.controls import ControlsPanel
from mesolive.gui.exporter import ExportOutcome, FrameShot, ReportExporter
from mesolive.gui.overlay_window import OverlayWindow, overlay_problem
from mesolive.gui.presenter import Level, Presenter, State
from mesolive.gui.report import SessionInfo, take_snapshot
from mesolive.gui.settings import UiSettings
from mesolive.gui.source_picker import SourcePickerDialog
from mesolive.gui.timeline import TimelinePanel
from mesolive.gui.tracks import Alert
from mesolive.gui.video_view import VideoView, render_annotated
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
    """A one-line coloured message across the top of the video, with buttons."""

    action_clicked = Signal()

    def __init__(self, action_text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.action = QPushButton(action_text)
        self.action.setVisible(bool(action_text))
        self.action.clicked.connect(self.action_clicked.emit)
        self.close_button = QPushButton("Dismiss")
        self.close_button.clicked.connect(self.hide)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 10, 6)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.action)
        lay.addWidget(self.close_button)
        self.level = Level.INFO
        self.hide()

    def show_message(self, level: Level, text: str, *, action: bool = False) -> None:
        if not text:
            self.hide()
            return
        self.level = level
        self.setStyleSheet(
            f"Banner {{{_BANNER_STYLES[level]}}} QLabel {{color:white; font-weight:bold;}}"
        )
        self.label.setText(text)
        self.action.setVisible(action and bool(self.action.text()))
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
        self.presenter.set_threshold(self.settings.threshold)
        self.presenter.tracks.alert_seconds = self.settings.alert_seconds
        self._gpu_expected = gpu_expected()
        self.overlay_window: OverlayWindow | None = None
        self._tray: QSystemTrayIcon | None = None
        self._last_painted = 0
        self._last_stats_t = time.monotonic()
        self.fps_shown = 0.0
        self._shut_down: bool | None = None
        self._panel_key: tuple[int, float, int, float] | None = None
        self._superseded0 = 0
        self.exporter = ReportExporter(self)

        self._build_widgets()
        self._build_actions()
        self._connect()
        self._restore_geometry()
        self._update_actions()

    # -- construction -------------------------------------------------------------------

    def _build_widgets(self) -> None:
        self.video = VideoView()
        self.video.overlay.threshold = self.settings.threshold
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
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.controls)
        self.side = QTabWidget()
        self.side.addTab(self.timeline, "Faces")
        self.side.addTab(scroll, "Settings")
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
        sb.addWidget(self.state_label)
        sb.addWidget(self.source_label, 1)
        for w in (self.backend_label, self.fps_label, self.latency_label, self.drops_label):
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
        for a in (self.act_start, self.act_pause, self.act_stop):
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
        for a in (self.act_snapshot, self.act_export, self.act_overlay):
            tb.addAction(a)

    def _connect(self) -> None:
        p = self.presenter
        p.result_ready.connect(self._on_result)
        p.state_changed.connect(lambda _s: self._update_actions())
        p.message.connect(self._on_message)
        p.backend_changed.connect(self._on_backend)
        p.alert_raised.connect(self.on_alert)
        self.exporter.finished.connect(self._on_exported)
        self.banner.action_clicked.connect(self.choose_source)
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
            every=s.every,
            threshold=s.threshold,
            backend=getattr(a, "backend", "auto") or "auto",
            model_dir=getattr(a, "model_dir", None),
            threads=getattr(a, "threads", None),
        )

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
        self._superseded0 = self.video.superseded  # the status bar counts per session
        try:
            config = self.pipeline_config()
        except (MesoliveError, ValueError) as e:
            self._on_message(Level.ERROR, str(e))
            return False
        ok = self.presenter.start(uri, config, loop=self.settings.loop_files)
        if self.overlay_window is not None:
            self.set_overlay_mode(True)  # follow the new source's region
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
        self.settings.threshold = value
        self.presenter.set_threshold(value)
        self.video.overlay.threshold = value
        if self.overlay_window is not None:
            self.overlay_window.overlay.threshold = value
        self.timeline.set_threshold(value)
        self.video.update()

    def _on_alert_settings(self) -> None:
        self.controls.store(self.settings)
        self.presenter.tracks.alert_seconds = self.settings.alert_seconds

    # -- results and messages -------------------------------------------------------------

    def _on_result(self, result: FrameResult) -> None:
        self.video.set_result(result)
        if self.overlay_window is not None:
            self.overlay_window.set_result(result, self.presenter.tracks.recent_scores())

    def _on_message(self, level: Level, text: str) -> None:
        if not text:
            if self.banner.level is not Level.ERROR:
                self.banner.hide()
            return
        source_error = level is Level.ERROR and self.presenter.last_error_source
        self.banner.show_message(level, text, action=source_error)
        if source_error:
            self.video.clear(text + "\n\nPress Ctrl+O to choose another source.")
        elif level is Level.ERROR:  # models or back end: the Settings tab, not the source
            self.video.clear(text + "\n\nCheck the models in the Settings tab, then press F5.")
        self.statusBar().showMessage(text, 10000)

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
        now = time.monotonic()
        dt = max(1e-6, now - self._last_stats_t)
        painted = self.video.painted
        self.fps_shown = (painted - self._last_painted) / dt
        self._last_painted, self._last_stats_t = painted, now
        c = self.presenter.refresh_counters()
        state = self.presenter.state
        self.state_label.setText(state.value)
        if state in (State.RUNNING, State.PAUSED):
            self.fps_label.setText(f"{self.fps_shown:.1f} fps")
        else:
            self.fps_label.setText("– fps")
        lat = c.latency_ema
        self.latency_label.setText(
            f"latency {1000 * lat:.0f} ms" if lat is not None else "latency –"
        )
        superseded = self.video.superseded - self._superseded0
        dropped = c.capture_drops + superseded
        share = 100.0 * dropped / c.frames_read if c.frames_read else 0.0
        self.drops_label.setText(f"dropped {dropped} ({share:.1f}%)")
        self.drops_label.setToolTip(
            f"{c.capture_drops} frames the analysis had no time for, {superseded} "
            f"results replaced before they were drawn, of {c.frames_read} frames captured; "
            f"{c.errors} frames failed"
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
            threshold=s.threshold,
            backend=self.presenter.backend,
            started=self.presenter.counters.started,
            every=s.every,
            det_size=s.det_size or None,
        )

    def snapshot_image(self) -> Any:
        """The current frame with the overlay at full resolution (QImage), or None."""
        result = self.video.result
        if result is None:
            return None
        return render_annotated(result, self.video.overlay, self.presenter.tracks.recent_scores())

    def save_snapshot(self, path: str | None = None) -> Path | None:
        img = self.snapshot_image()
        if img is None:
            self.statusBar().showMessage("nothing to save yet", 5000)
            return None
        if not path:
            default = f"mesolive-snapshot-{time.strftime('%Y%m%d-%H%M%S')}.png"
            path, _ = QFileDialog.getSaveFileName(self, "Save snapshot", default, "PNG (*.png)")
            if not path:
                return None
        if not img.save(path):
            QMessageBox.warning(self, "Snapshot", f"could not write {path}")
            return None
        self.statusBar().showMessage(f"snapshot saved to {path}", 5000)
        return Path(path)

    def export_report(self, folder: str | None = None) -> bool:
        """Start writing timeline JSON, CSV, PNG and an annotated snapshot; False if not started.

        ``folder`` is made for the report (a number is added where it exists);
        without one, a dialog asks for the parent folder and a timestamped
        folder is made in it. The session is copied here; the files are
        written in a worker thread, and :meth:`_on_exported` says how it went.
        """
        if self.exporter.busy:
            self.statusBar().showMessage("A report is still being written: wait for it", 5000)
            return False
        if not folder:
            base = QFileDialog.getExistingDirectory(self, "Export the session report into")
            if not base:
                return False
            folder = str(Path(base) / f"mesolive-session-{time.strftime('%Y%m%d-%H%M%S')}")
        tracks = self.presenter.tracks
        snap = take_snapshot(self.session_info(), tracks, self.presenter.summaries)
        result = self.video.result
        shot = None
        if result is not None:
            shot = FrameShot.of(result, self.video.overlay, tracks.recent_scores())
        self.exporter.start(Path(folder), snap, shot)
        self.statusBar().showMessage("Exporting report…")
        return True

    def _on_exported(self, outcome: ExportOutcome) -> None:
        if outcome.error:
            self.statusBar().clearMessage()
            self.banner.show_message(Level.ERROR, outcome.error)
            return
        self.statusBar().showMessage(f"Session report written to {outcome.folder}", 10000)

    # -- view ------------------------------------------------------------------------------

    def set_overlay_mode(self, on: bool) -> None:
        """Show or hide the click-through overlay over the captured region."""
        if self.overlay_window is not None:
            self.overlay_window.close()
            self.overlay_window.deleteLater()
            self.overlay_window = None
        if not on:
            self._set_checked(self.act_overlay, False)
            return
        problem = overlay_problem()
        try:
            if problem:
                raise MesoliveError(problem)
            win = OverlayWindow(self.presenter.uri or self.settings.source, self.settings.threshold)
        except MesoliveError as e:
            self._set_checked(self.act_overlay, False)
            self.statusBar().showMessage(f"overlay mode: {e}", 10000)
            self.banner.show_message(Level.WARNING, f"Overlay mode: {e}")
            return
        self.overlay_window = win
        win.set_result(self.video.result, self.presenter.tracks.recent_scores())
        win.show()
        self._set_checked(self.act_overlay, True)

    @staticmethod
    def _set_checked(act: QAction, on: bool) -> None:
        act.blockSignals(True)
        act.setChecked(on)
        act.blockSignals(False)

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
        if self.overlay_window is not None:
            self.overlay_window.close()
            self.overlay_window = None
        if self._tray is not None:
            self._tray.hide()
        self.save_settings()
        self._shut_down = ok
        return ok

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        event.accept()
