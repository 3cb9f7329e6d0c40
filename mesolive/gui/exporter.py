"""Writes session reports and snapshots in a worker thread, so the window never waits for the disk.

The window hands :meth:`ExportWorker.start` (a report) or
:meth:`ExportWorker.start_snapshot` immutable values only: a
:class:`~mesolive.gui.report.ReportSnapshot` and a :class:`FrameShot`. The
worker draws the annotated frame on a ``QImage`` (QPainter on an image is
allowed outside the GUI thread; widgets are not), has the plot drawn by a
child process, writes every file atomically, and reports one
:class:`ExportOutcome` through a queued signal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QObject, Signal, Slot

from mesolive.errors import MesoliveError
from mesolive.gui.overlay import OverlayPainter
from mesolive.gui.report import ReportSnapshot, Writer, export_session
from mesolive.gui.video_view import render_annotated
from mesolive.outputs import write_atomic
from mesolive.types import FrameResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameShot:
    """The frame shown and how its overlay is drawn, for ``snapshot.png``."""

    result: FrameResult
    line_width: float
    history: tuple[tuple[int, tuple[float, ...]], ...]  # track ID → recent fake scores

    @classmethod
    def of(
        cls, result: FrameResult, overlay: OverlayPainter, history: Mapping[int, Sequence[float]]
    ) -> FrameShot:
        hist = tuple((tid, tuple(scores)) for tid, scores in history.items())
        return cls(result, overlay.line_width, hist)

    def write_png(self, f: IO[bytes]) -> None:
        overlay = OverlayPainter(line_width=self.line_width)
        img = render_annotated(self.result, overlay, dict(self.history))
        data = QByteArray()
        buf = QBuffer(data)
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        if not img.save(buf, "PNG"):
            raise OSError("the snapshot could not be encoded as PNG")
        buf.close()
        f.write(data.data())


@dataclass(frozen=True)
class ExportOutcome:
    """What one export wrote: ``files`` (key → path), or the one-line ``error``.

    ``base`` is what was asked for: the report's folder, or the snapshot's file.
    """

    base: Path
    files: tuple[tuple[str, Path], ...] = ()
    error: str = ""

    @property
    def paths(self) -> dict[str, Path]:
        return dict(self.files)

    @property
    def folder(self) -> Path | None:
        """The folder written into (None when nothing was written)."""
        return self.files[0][1].parent if self.files else None


class ExportWorker(QObject):
    """Runs one export (a report or a snapshot) at a time in a plain thread.

    Signals
    -------
    finished(object)
        The :class:`ExportOutcome`, in the GUI thread, after the worker ended.
    """

    finished = Signal(object)
    _done = Signal(object)  # from the worker; queued into the GUI thread

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: threading.Thread | None = None
        self._done.connect(self._on_done)

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def start(
        self,
        folder: Path,
        snap: ReportSnapshot,
        shot: FrameShot | None,
        extra: Mapping[str, tuple[str, Writer]] | None = None,
    ) -> bool:
        """Write the report into ``folder`` (a new one, see ``new_folder``); False while busy.

        ``extra`` maps more keys to ``(file name, writer)``; the writers run in
        the worker, so they must hold immutable values only (the alert history's
        :func:`~mesolive.gui.alert_history.report_files` does).
        """
        files = dict(extra or {})
        if shot is not None:
            files["snapshot"] = ("snapshot.png", shot.write_png)
        return self._start(folder, "report", lambda: export_session(folder, snap, files))

    def start_snapshot(self, path: Path, shot: FrameShot) -> bool:
        """Write ``shot`` as a PNG at ``path`` (replaced whole or not at all); False while busy."""

        def write() -> dict[str, Path]:
            write_atomic(path, "snapshot", shot.write_png, mode="wb")
            log.info("snapshot written to %s", path)
            return {"snapshot": path}

        return self._start(path, "snapshot", write)

    def join(self, timeout: float) -> bool:
        """Wait for a running export (window closing); True when none is left."""
        t = self._thread
        if t is None:
            return True
        t.join(timeout)
        if t.is_alive():
            log.warning("an export did not finish in %.0f s", timeout)
            return False
        return True

    def _start(self, base: Path, what: str, job: Callable[[], Mapping[str, Path]]) -> bool:
        if self._thread is not None:
            return False
        self._thread = threading.Thread(
            target=self._run, args=(base, what, job), name=f"mesolive-{what}", daemon=False
        )
        self._thread.start()
        return True

    def _run(self, base: Path, what: str, job: Callable[[], Mapping[str, Path]]) -> None:
        try:
            outcome = ExportOutcome(base, tuple(job().items()))
        except (OSError, MesoliveError) as e:
            log.warning("%s export to %s failed: %s", what, base, e)
            outcome = ExportOutcome(base, error=f"Could not write the {what}: {e}")
        except Exception as e:  # a bug; the session must go on
            log.exception("%s export to %s failed", what, base)
            outcome = ExportOutcome(base, error=f"Could not write the {what}: {e}")
        try:
            self._done.emit(outcome)
        except RuntimeError:  # the window was deleted while the export ran
            log.info("%s export ended after the window closed: %s", what, outcome)

    @Slot(object)
    def _on_done(self, outcome: ExportOutcome) -> None:
        t, self._thread = self._thread, None
        if t is not None:
            t.join(1.0)  # it returns right after the emit
        self.finished.emit(outcome)
