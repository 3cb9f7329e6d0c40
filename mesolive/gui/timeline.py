"""Side panel: a live timeline of each track's running score and a verdict table.

The plot is pyqtgraph rather than Qt Charts: Qt Charts ships only in
PySide6-Addons (a much larger wheel than PySide6-Essentials), and pyqtgraph is
pure Python on NumPy, made for plots that are redrawn several times a second.

The panel is refreshed by a slow timer (a few times a second), not per frame:
it reads the track store and shows only the last :attr:`TimelinePanel.window`
seconds, so its cost does not grow with the session's length.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mesolive.gui.overlay import face_colour
from mesolive.gui.tracks import TrackStore

# Line colours per track, with no green, amber or red: those mean a score band
# in the overlay, and a red line for a face drawn green would mislead.
_TRACK_COLOURS = [
    (66, 135, 245),  # blue
    (186, 104, 200),  # purple
    (38, 198, 218),  # cyan
    (240, 98, 146),  # pink
    (161, 136, 127),  # brown-grey
    (220, 220, 220),  # white
    (121, 134, 203),  # indigo
    (77, 182, 172),  # teal
    (0, 151, 167),  # dark cyan
    (144, 164, 174),  # blue-grey
]

COLUMNS = ["Track", "Score", "Mean", "Fake frames", "Scored", "Verdict"]


def track_colour(track_id: int) -> QColor:
    return QColor(*_TRACK_COLOURS[(track_id - 1) % len(_TRACK_COLOURS)])


class TimelinePanel(QWidget):
    """The running score of every track over the last :attr:`window` seconds.

    Attributes
    ----------
    window
        Seconds of history shown (the report keeps all of it).
    lost_after
        A track not seen for this long is shown greyed out as lost.
    """

    def __init__(self, parent: QWidget | None = None, window: float = 60.0) -> None:
        super().__init__(parent)
        self.window = window
        self.lost_after = 2.0
        self.plot = pg.PlotWidget(background=(30, 30, 30))
        self.plot.setMinimumHeight(160)
        self.plot.setLabel("left", "fake score")
        self.plot.setLabel("bottom", "time", units="s")
        self.plot.setYRange(0.0, 1.0, padding=0.02)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.addLegend(offset=(5, 5), labelTextSize="8pt")
        self.threshold_line = pg.InfiniteLine(
            pos=0.5, angle=0, movable=False, pen=pg.mkPen((230, 230, 230), style=Qt.DashLine)
        )
        self.plot.addItem(self.threshold_line)
        self.curves: dict[int, pg.PlotDataItem] = {}

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setToolTip(
            "Score: running fake score · Mean: over the recent window · Fake frames: the "
            "paper's video-level rule, share of scored frames above the threshold"
        )

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot, 3)
        lay.addWidget(self.table, 2)

    def clear(self) -> None:
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        legend = self.plot.plotItem.legend
        if legend is not None:
            legend.clear()
        self.curves.clear()
        self.table.setRowCount(0)

    def set_threshold(self, threshold: float) -> None:
        self.threshold_line.setPos(threshold)

    def refresh(self, store: TrackStore) -> None:
        """Redraw the curves and the table from ``store``.

        Only tracks seen within the last :attr:`window` seconds get a curve, a
        legend entry and a table row; those of older tracks are removed. A
        looping clip or a crowd brings new track IDs all session long, and
        keeping a widget item per ID ever seen grew memory and refresh time
        without bound (the store, and so the report, still keeps every track).
        """
        self.set_threshold(store.threshold)
        t_end = store.t_last
        t_start = max(0.0, t_end - self.window)
        shown = {tid: rec for tid, rec in store.tracks.items() if rec.last_seen >= t_start}
        for tid in [tid for tid in self.curves if tid not in shown]:
            self.plot.removeItem(self.curves.pop(tid))  # also takes it out of the legend
        for tid, rec in shown.items():
            curve = self.curves.get(tid)
            if curve is None:
                curve = self.plot.plot(name=f"#{tid}", pen=pg.mkPen(track_colour(tid), width=2))
                curve.setClipToView(True)
                self.curves[tid] = curve
            pts = rec.points
            i = pts.since(t_start)
            if i < len(pts):
                # arrays of doubles: NumPy views them without a Python loop
                curve.setData(
                    np.frombuffer(pts.t, np.float64)[i:].copy(),
                    np.frombuffer(pts.running, np.float64)[i:].copy(),
                )
        self.plot.setXRange(t_start, max(t_start + 1.0, t_end), padding=0.0)
        self._refresh_table(store, sorted(shown))

    def _refresh_table(self, store: TrackStore, ids: list[int]) -> None:
        self.table.setRowCount(len(ids))
        for row, tid in enumerate(ids):
            rec = store.tracks[tid]
            face = rec.last
            lost = store.t_last - rec.last_seen > self.lost_after
            scored = face.n_scored > 0
            cells = [
                f"#{tid}" + (" (lost)" if lost else ""),
                f"{100 * face.running_score:.0f}%" if scored else "–",
                f"{100 * face.window_score:.0f}%" if scored else "–",
                f"{100 * face.fake_share:.0f}%" if scored else "–",
                str(face.n_scored),
                face.verdict.value,
            ]
            for col, text in enumerate(cells):
                item = self.table.item(row, col)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(row, col, item)
                item.setText(text)
                fg = QColor(140, 140, 140) if lost else QColor(0, 0, 0)
                item.setForeground(QBrush(fg))
            swatch = self.table.item(row, 0)
            swatch.setBackground(QBrush(track_colour(tid).lighter(160)))
            verdict = self.table.item(row, 5)
            verdict.setBackground(QBrush(face_colour(face, store.threshold).lighter(130)))
