"""Side panel: the list of alerts, and the timeline of a face around the one clicked.

The list shows each alert's time, a thumbnail of the face, its peak running
score and how long the face stayed fake. Clicking a row plots that face's
running score (and its frame scores as dots) from :attr:`AlertPanel.margin`
seconds before the face's verdict became FAKE to as long after the alert
ended, that stretch shaded. The panel redraws on a slow timer and only when the
history changed. Under the list: whether to keep a video clip around each
alert (off by default).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mesolive.gui.alert_history import AlertHistory, AlertRecord
from mesolive.gui.recorder import CLIP_SECONDS
from mesolive.gui.timeline import read_only_table, track_colour
from mesolive.gui.tracks import TrackStore
from mesolive.gui.video_view import bgr_to_qimage

COLUMNS = ["Face", "Time", "Peak", "Duration"]


def clock(seconds: float) -> str:
    """``"1:05"`` for 65 s (``"1:02:05"`` past an hour)."""
    s = max(0, int(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


class AlertPanel(QWidget):
    """The alerts of the session and a timeline around the one selected.

    Signals
    -------
    clips_changed(bool, float)
        Keep clips around alerts (on/off) and the seconds before and after.
    """

    clips_changed = Signal(bool, float)

    REFRESH_MS = 250

    def __init__(
        self, history: AlertHistory, tracks: TrackStore, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.history = history
        self.tracks = tracks
        self.margin = 10.0
        self.selected: int | None = None  # number of the alert shown
        self._version = -1
        self._session = 0  # the history's session of the selection

        self.table = read_only_table(COLUMNS, QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setIconSize(QSize(48, 48))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setToolTip("Click an alert to see that face's timeline around it")
        self.table.currentCellChanged.connect(lambda row, *_: self._select_row(row))

        self.plot = pg.PlotWidget(background=(30, 30, 30))
        self.plot.setMinimumHeight(140)
        self.plot.setLabel("left", "fake score")
        self.plot.setLabel("bottom", "session time", units="s")
        self.plot.setYRange(0.0, 1.0, padding=0.02)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.curve = self.plot.plot(pen=pg.mkPen((220, 220, 220), width=2))
        self.dots = self.plot.plot(pen=None, symbol="o", symbolSize=3)
        self.stay = pg.LinearRegionItem(
            movable=False, brush=pg.mkBrush(230, 30, 40, 50), pen=pg.mkPen(None)
        )
        self.alert_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((230, 30, 40)))
        self.threshold_line = pg.InfiniteLine(
            angle=0, movable=False, pen=pg.mkPen((230, 230, 230), style=Qt.PenStyle.DashLine)
        )
        self.marks = (self.stay, self.alert_line, self.threshold_line)  # of the alert shown
        for item in self.marks:
            self.plot.addItem(item)
            item.hide()
        self.caption = QLabel("No alert yet.")

        self.clips = QCheckBox("Keep a video clip of")
        self.clips.setToolTip(
            "Save the annotated video from this long before to this long after each alert "
            "(the frames are held in memory until an alert; nothing is written otherwise)"
        )
        self.clip_seconds = QDoubleSpinBox()
        self.clip_seconds.setRange(1.0, 60.0)
        self.clip_seconds.setValue(CLIP_SECONDS)
        self.clip_seconds.setSuffix(" s")
        self.clips.toggled.connect(self._emit_clips)
        self.clip_seconds.valueChanged.connect(self._emit_clips)
        row = QHBoxLayout()
        row.addWidget(self.clips)
        row.addWidget(self.clip_seconds)
        row.addWidget(QLabel("before and after each alert"), 1)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.table, 3)
        lay.addWidget(self.caption)
        lay.addWidget(self.plot, 2)
        lay.addLayout(row)

        self.timer = QTimer(self)
        self.timer.setInterval(self.REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    def _emit_clips(self) -> None:
        if self.clips.isChecked() or self.sender() is self.clips:  # a new length: while on
            self.clips_changed.emit(self.clips.isChecked(), self.clip_seconds.value())

    def refresh(self) -> None:
        """Redraw the list (and the timeline shown) if the history changed."""
        if self.history.version == self._version:
            return
        self._version = self.history.version
        records = self.history.records
        self.table.setRowCount(len(records))
        for row, rec in enumerate(records):
            self._fill_row(row, rec)
        if self.history.sessions != self._session:  # a new session: nothing selected
            self._session = self.history.sessions
            self.clear()
        elif self.selected is not None:
            self._show(self.selected)
        if self.selected is None and records:
            self.caption.setText("Click an alert in the list to plot its face's timeline.")

    def _fill_row(self, row: int, rec: AlertRecord) -> None:
        ongoing = "" if rec.ended else " …"
        cells = [
            f"#{rec.track_id}",
            clock(rec.t),
            f"{100 * rec.peak:.0f}%",
            f"{rec.duration:.1f} s{ongoing}",
        ]
        for col, text in enumerate(cells):
            item = self.table.item(row, col)
            if item is None:
                item = QTableWidgetItem()
                self.table.setItem(row, col, item)
            item.setText(text)
        face = self.table.item(row, 0)
        if face.data(Qt.ItemDataRole.UserRole) != rec.number and rec.thumbnail is not None:
            face.setIcon(QIcon(QPixmap.fromImage(bgr_to_qimage(rec.thumbnail))))
            face.setData(Qt.ItemDataRole.UserRole, rec.number)
        face.setToolTip(rec.message)
        self.table.setRowHeight(row, 52)

    def _select_row(self, row: int) -> None:
        records = self.history.records
        if 0 <= row < len(records):
            self._show(records[row].number)

    def _show(self, number: int) -> None:
        self.selected = number
        rec = self.history.records[number - 1]
        t0, t1 = rec.t_start - self.margin, rec.t_end + self.margin
        pen = pg.mkPen(track_colour(rec.track_id), width=2)
        self.curve.setPen(pen)
        track = self.tracks.tracks.get(rec.track_id)
        if track is None:
            self.curve.setData([], [])
            self.dots.setData([], [])
        else:
            pts = track.points
            i, j = pts.since(t0), pts.since(t1)
            t = np.frombuffer(pts.t, np.float64)[i:j].copy()
            self.curve.setData(t, np.frombuffer(pts.running, np.float64)[i:j].copy())
            self.dots.setData(t, np.frombuffer(pts.fake, np.float64)[i:j].copy())
            self.dots.setSymbolBrush(track_colour(rec.track_id))
        self.stay.setRegion((rec.t_start, rec.t_end))
        self.alert_line.setPos(rec.t)
        for item in self.marks:
            item.show()
        if self.tracks.threshold is not None:  # the newest result's
            self.threshold_line.setPos(self.tracks.threshold)
        self.plot.setXRange(t0, t1, padding=0.0)
        state = f"ended ({rec.ended})" if rec.ended else "still fake"
        self.caption.setText(
            f"Alert {rec.number}: face #{rec.track_id} at {clock(rec.t)}, peak "
            f"{100 * rec.peak:.0f}%, {rec.duration:.1f} s FAKE, {state}"
        )

    def clear(self) -> None:
        """Empty the timeline shown (the list follows the history)."""
        self.selected = None
        self.curve.setData([], [])
        self.dots.setData([], [])
        for item in self.marks:  # no band, alert or threshold of an alert not shown
            item.hide()
        self.caption.setText("No alert yet.")
