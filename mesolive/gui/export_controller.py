"""Snapshots and session reports of the window's session.

:class:`ExportController` asks where to write (a dialog, unless the caller
names the place), copies on the GUI thread what the files need (a
:class:`~mesolive.gui.report.ReportSnapshot` and a
:class:`~mesolive.gui.exporter.FrameShot`: immutable values, milliseconds)
and hands them to an :class:`~mesolive.gui.exporter.ExportWorker` (one for
reports, one for snapshots, so a snapshot need not wait for a report), which
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
from PySide6.QtWidgets import QFileDialog, QWidget

from mesolive.gui.exporter import ExportOutcome, ExportWorker, FrameShot
from mesolive.gui.report import SessionInfo, Writer, take_snapshot
from mesolive.gui.video_view import VideoView

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
        A report or a snapshot that could not be written, in one line.
    finished(object)
        The report's :class:`ExportOutcome`, once its worker ended.
    snapshot_finished(object)
        The snapshot's :class:`ExportOutcome`, once its worker ended.
    """

    status = Signal(str, int)
    failed = Signal(str)
    finished = Signal(object)
    snapshot_finished = Signal(object)

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
        self.reports = ExportWorker(self)
        self.reports.finished.connect(self._on_exported)
        self.snapshots = ExportWorker(self)
        self.snapshots.finished.connect(self._on_snapshot)

    @property
    def busy(self) -> bool:
        """A report or a snapshot is being written."""
        return self.reports.busy or self.snapshots.busy

    def join(self, timeout: float) -> bool:
        """Wait for the files being written (window closing); True when none is left."""
        ok = self.reports.join(timeout)
        return self.snapshots.join(timeout) and ok

    def save_snapshot(self, path: str | None = None) -> bool:
        """Start saving the frame shown, with its overlay, as a PNG at ``path`` (asked when None).

        The frame is the one shown when this is called (not when the dialog
        closes); it is drawn and written in a worker thread, and
        :attr:`snapshot_finished` says how it went. False if not started.
        """
        result = self.video.result
        if result is None:
            self.status.emit("nothing to save yet", 5000)
            return False
        if self.snapshots.busy:
            self.status.emit("A snapshot is still being saved: wait for it", 5000)
            return False
        shot = FrameShot.of(result, self.video.overlay, self.presenter.tracks.recent_scores())
        if not path:
            dlg = QFileDialog(self._dialog_parent, "Save snapshot", "", "PNG (*.png)")
            dlg.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
            # "snap1" becomes snap1.png before the dialog asks about replacing a file
            dlg.setDefaultSuffix("png")
            dlg.selectFile(f"mesolive-snapshot-{time.strftime('%Y%m%d-%H%M%S')}.png")
            if not dlg.exec():
                return False
            path = dlg.selectedFiles()[0]
        self.snapshots.start_snapshot(Path(path), shot)
        self.status.emit("Saving snapshot…", 0)
        return True

    def export_report(self, folder: str | None = None) -> bool:
        """Start writing timeline JSON, CSV, PNG and an annotated snapshot; False if not started.

        ``folder`` is made for the report (a number is added where it exists);
        without one, a dialog asks for the parent folder and a timestamped
        folder is made in it. The session is copied here; the files are
        written in a worker thread, and :attr:`finished` says how it went.
        """
        if self.reports.busy:
            self.status.emit("A report is still being written: wait for it", 5000)
            return False
        if self.presenter.tracks.threshold is None:  # no result in this session yet
            self.status.emit("nothing to export yet", 5000)
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
        result = self.video.last_result  # also where a source error took the frame's place
        shot = None
        if result is not None:
            shot = FrameShot.of(result, self.video.overlay, tracks.recent_scores())
        self.reports.start(Path(folder), snap, shot, self.extra_files())
        self.status.emit("Exporting report…", 0)
        return True

    @Slot(object)
    def _on_exported(self, outcome: ExportOutcome) -> None:
        self._tell(outcome, f"Session report written to {outcome.folder}")
        self.finished.emit(outcome)

    @Slot(object)
    def _on_snapshot(self, outcome: ExportOutcome) -> None:
        self._tell(outcome, f"Snapshot saved to {outcome.base}")
        self.snapshot_finished.emit(outcome)

    def _tell(self, outcome: ExportOutcome, done: str) -> None:
        if outcome.error:
            self.status.emit("", 0)
            self.failed.emit(outcome.error)
        else:
            self.status.emit(done, 10000)
