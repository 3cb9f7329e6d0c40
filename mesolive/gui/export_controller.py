"""Snapshots and session reports of the window's session.

:class:`ExportController` asks where to write (a dialog, unless the caller
names the place), copies on the GUI thread what the files need (a
:class:`~mesolive.gui.report.ReportSnapshot` and a
:class:`~mesolive.gui.exporter.FrameShot`: immutable values, milliseconds)
and hands them to :class:`~mesolive.gui.exporter.ReportExporter`, which
writes them in a worker thread. How it went reaches the window as signals;
the controller shows nothing itself but its dialogs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from mesolive.gui.exporter import ExportOutcome, FrameShot, ReportExporter
from mesolive.gui.report import SessionInfo, Writer, take_snapshot
from mesolive.gui.video_view import VideoView, render_annotated

if TYPE_CHECKING:
    from mesolive.gui.presenter import Presenter

log = logging.getLogger(__name__)


class ExportController(QObject):
    """Saves snapshots and exports session reports.

    Parameters
    ----------
    presenter
        The session: its tracks and, once it ended, the pipeline's summaries.
    video
        The view whose frame (and overlay style) the snapshots show.
    info
        The report's session header, asked for at each export.
    extra_files
        More report files, ``key → (file name, writer)``, asked for at each
        export; the writers run in the worker, so they hold immutable values.
    parent
        The window the dialogs belong to.

    Signals
    -------
    status(str, int)
        A status-bar message and how long to show it (ms; 0 until replaced,
        an empty text clears it).
    failed(str)
        A report that could not be written, in one line.
    finished(object)
        The report's :class:`ExportOutcome`, once its worker ended.
    """

    status = Signal(str, int)
    failed = Signal(str)
    finished = Signal(object)

    def __init__(
        self,
        presenter: Presenter,
        video: VideoView,
        info: Callable[[], SessionInfo],
        extra_files: Callable[[], Mapping[str, tuple[str, Writer]]],
        parent: QWidget,
    ) -> None:
        super().__init__(parent)
        self.presenter = presenter
        self.video = video
        self.info = info
        self.extra_files = extra_files
        self._dialog_parent = parent
        self.writer = ReportExporter(self)
        self.writer.finished.connect(self._on_exported)

    @property
    def busy(self) -> bool:
        """A report is being written."""
        return self.writer.busy

    def join(self, timeout: float) -> bool:
        """Wait for a report being written (window closing); True when none is left."""
        return self.writer.join(timeout)

    def snapshot_image(self) -> QImage | None:
        """The current frame with the overlay at full resolution, or None before a frame."""
        result = self.video.result
        if result is None:
            return None
        return render_annotated(result, self.video.overlay, self.presenter.tracks.recent_scores())

    def save_snapshot(self, path: str | None = None) -> Path | None:
        """Save the current frame with its overlay to ``path`` (asked when None)."""
        img = self.snapshot_image()
        if img is None:
            self.status.emit("nothing to save yet", 5000)
            return None
        if not path:
            default = f"mesolive-snapshot-{time.strftime('%Y%m%d-%H%M%S')}.png"
            path, _ = QFileDialog.getSaveFileName(
                self._dialog_parent, "Save snapshot", default, "PNG (*.png)"
            )
            if not path:
                return None
        if not img.save(path):
            QMessageBox.warning(self._dialog_parent, "Snapshot", f"could not write {path}")
            return None
        self.status.emit(f"snapshot saved to {path}", 5000)
        return Path(path)

    def export_report(self, folder: str | None = None) -> bool:
        """Start writing timeline JSON, CSV, PNG and an annotated snapshot; False if not started.

        ``folder`` is made for the report (a number is added where it exists);
        without one, a dialog asks for the parent folder and a timestamped
        folder is made in it. The session is copied here; the files are
        written in a worker thread, and :attr:`finished` says how it went.
        """
        if self.writer.busy:
            self.status.emit("A report is still being written: wait for it", 5000)
            return False
        if not folder:
            base = QFileDialog.getExistingDirectory(
                self._dialog_parent, "Export the session report into"
            )
            if not base:
                return False
            folder = str(Path(base) / f"mesolive-session-{time.strftime('%Y%m%d-%H%M%S')}")
        tracks = self.presenter.tracks
        snap = take_snapshot(self.info(), tracks, self.presenter.summaries)
        result = self.video.result
        shot = None
        if result is not None:
            shot = FrameShot.of(result, self.video.overlay, tracks.recent_scores())
        self.writer.start(Path(folder), snap, shot, self.extra_files())
        self.status.emit("Exporting report…", 0)
        return True

    @Slot(object)
    def _on_exported(self, outcome: ExportOutcome) -> None:
        if outcome.error:
            self.status.emit("", 0)
            self.failed.emit(outcome.error)
        else:
            self.status.emit(f"Session report written to {outcome.folder}", 10000)
        self.finished.emit(outcome)
