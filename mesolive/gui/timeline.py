"""Side panel: a live timeline of each track's running score and a verdict table.

The plot is pyqtgraph rather than Qt Charts: Qt Charts ships only in
PySide6-Addons (a much larger wheel than PySide6-Essentials), and pyqtgraph is
pure Python on NumPy, made for plots that are redrawn several times a second.

The panel is refreshed by a slow timer (a few times a second), not per frame:
it reads the track store and shows only the last :attr:`TimelinePanel.window`
seconds, so its cost does not grow with the session's length. Each refresh is
one piece of GUI-thread work, and on a busy machine such a piece stretches
to several times its length while other threads take turns on the cores, so
it is kept small: the time axis moves in steps of :attr:`TimelinePanel.step`
seconds (its ticks and labels are laid out again only then, not four times a
second), and curves are 1 px cosmetic lines (Qt's fast line path; 2 px
lines took twice as long to draw) cut to two points per pixel column.

Faces not seen for :attr:`TimelinePanel.gone_after` seconds are "gone": the
table lists the current faces and folds the gone ones away behind a "Show N
earlier faces" box, and the plot draws the current faces unless "All faces" is
ticked. The legend is a line of text above the plot, never on it.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mesolive.gui.overlay import face_colour, verdict_word
from mesolive.gui.report_plot import envelope
from mesolive.gui.tracks import TrackRecord, TrackStore

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
#: Seconds a face may be missing before it counts as gone (as an alert's face does).
GONE_AFTER_S = 2.0
#: Rows of gone faces shown at most (the most recently seen): a crowd or a long
#: session must not make the table, redrawn four times a second, grow without bound.
MAX_GONE_ROWS = 50
#: Legend entries at most; more are summed up as "+N".
MAX_LEGEND = 12


def track_colour(track_id: int) -> QColor:
    return QColor(*_TRACK_COLOURS[(track_id - 1) % len(_TRACK_COLOURS)])


def read_only_table(columns: list[str], selection: QAbstractItemView.SelectionMode) -> QTableWidget:
    """A table of ``columns`` the user reads but never edits, sized to its contents."""
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(selection)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


class TimelinePanel(QWidget):
    """The running score of the current tracks over the last :attr:`window` seconds.

    It redraws from ``store`` four times a second, while shown and only when
    the store changed.

    Attributes
    ----------
    window
        Seconds of history shown (the report keeps all of it).
    step
        The time axis moves by this many seconds at once: it shows from
        ``window - step`` to ``window`` seconds of history.
    gone_after
        A track not seen for this long is gone: folded away in the table and
        off the plot unless asked for.
    """

    REFRESH_MS = 250

    def __init__(
        self, store: TrackStore, parent: QWidget | None = None, window: float = 60.0
    ) -> None:
        super().__init__(parent)
        self.window = window
        self.step = 10.0
        self.gone_after = GONE_AFTER_S
        self._store: TrackStore | None = None  # the last one shown, for the check boxes
        self._followed = store
        self._key: tuple[float, int, float | None] | None = None  # what was drawn last
        self._legend_ids: list[int] | None = None
        self._x_range: tuple[float, float] | None = None
        self.plot = pg.PlotWidget(background=(30, 30, 30))
        self.plot.setMinimumHeight(160)
        self.plot.setLabel("left", "fake score")
        self.plot.setLabel("bottom", "time", units="s")
        self.plot.setYRange(0.0, 1.0, padding=0.02)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.threshold_line = pg.InfiniteLine(
            pos=0.5, angle=0, movable=False, pen=pg.mkPen((230, 230, 230), style=Qt.DashLine)
        )
        self.plot.addItem(self.threshold_line)
        self.curves: dict[int, pg.PlotDataItem] = {}
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.all_faces = QCheckBox("All faces")
        self.all_faces.setToolTip(
            f"Plot every face of the last {window:.0f} s, also those gone "
            "(unticked: only the faces in view now)"
        )
        self.all_faces.toggled.connect(self._show_again)

        self.table = read_only_table(COLUMNS, QAbstractItemView.SelectionMode.NoSelection)
        self.table.setToolTip(
            "Score: running fake score · Mean: over the recent window · Fake frames: the "
            "paper's video-level rule, share of scored frames above the threshold"
        )
        self.show_gone = QCheckBox()
        self.show_gone.setToolTip(
            f"Faces not seen for {self.gone_after:.0f} s, greyed, most recent first "
            f"(at most {MAX_GONE_ROWS}; the session report lists every face)"
        )
        self.show_gone.toggled.connect(self._show_again)
        self._set_gone_count(0)

        top = QHBoxLayout()
        top.addWidget(self.legend, 1)
        top.addWidget(self.all_faces, 0, Qt.AlignmentFlag.AlignTop)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.plot, 3)
        lay.addWidget(self.table, 2)
        lay.addWidget(self.show_gone)

        self.timer = QTimer(self)
        self.timer.setInterval(self.REFRESH_MS)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def clear(self) -> None:
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        self.curves.clear()
        self._set_legend([])
        self.table.setRowCount(0)
        self._set_gone_count(0)

    def _tick(self) -> None:
        store = self._followed
        key = (store.t_last, len(store.tracks), store.threshold)
        if key != self._key and self.isVisible():  # hidden: its tab or the side panel
            self.refresh(store)
            self._key = key

    def set_threshold(self, threshold: float) -> None:
        self.threshold_line.setPos(threshold)

    def _show_again(self) -> None:
        if self._store is not None:
            self.refresh(self._store)

    def refresh(self, store: TrackStore) -> None:
        """Redraw the curves, the legend and the table from ``store``.

        Current faces (seen within :attr:`gone_after`) get a curve and a table
        row, by ID. Gone faces get a row only with "Show earlier faces" (at
        most :data:`MAX_GONE_ROWS`), and a curve only with "All faces" and
        only when seen within the last :attr:`window` seconds: a looping clip
        or a crowd brings new faces all session long, and a widget item per
        face ever seen grew memory and refresh time without bound (the store,
        and so the report, still keeps every track).
        """
        self._store = store
        if store.threshold is not None:
            self.set_threshold(store.threshold)
        t_end = store.t_last
        t_start = self.x_range(t_end)[0]
        current: list[int] = []
        gone: list[TrackRecord] = []
        for tid, rec in store.tracks.items():
            if t_end - rec.last_seen <= self.gone_after:
                current.append(tid)
            else:
                gone.append(rec)
        current.sort()
        gone.sort(key=lambda rec: rec.last_seen, reverse=True)
        plotted = current
        if self.all_faces.isChecked():
            plotted = sorted(current + [r.track_id for r in gone if r.last_seen >= t_start])
        for tid in [tid for tid in self.curves if tid not in plotted]:
            self.plot.removeItem(self.curves.pop(tid))
        for tid in plotted:
            curve = self.curves.get(tid)
            if curve is None:
                curve = self.plot.plot(pen=pg.mkPen(track_colour(tid), width=1))
                curve.setSkipFiniteCheck(True)  # running scores are never NaN
                self.curves[tid] = curve
            pts = store.tracks[tid].points
            i = pts.since(t_start)
            if i < len(pts):
                # arrays of doubles: NumPy copies them without a Python loop (a copy: the
                # curve keeps what it is given, and a view would stop the array growing)
                curve.setData(
                    *envelope(
                        np.frombuffer(pts.t, np.float64)[i:].copy(),
                        np.frombuffer(pts.running, np.float64)[i:].copy(),
                        self._columns(),
                    )
                )
        self._set_legend(plotted)
        self._set_x_range(t_end)
        self._set_gone_count(len(gone))
        rows = current
        if self.show_gone.isChecked():
            rows = current + [r.track_id for r in gone[:MAX_GONE_ROWS]]
        self._refresh_table(store, rows, len(current))

    def x_range(self, t_end: float) -> tuple[float, float]:
        """The time axis for a newest point at ``t_end``: ``window`` seconds, moved by ``step``."""
        right = max(self.window, math.ceil(t_end / self.step) * self.step)
        return right - self.window, right

    def _set_x_range(self, t_end: float) -> None:
        x_range = self.x_range(t_end)
        if x_range != self._x_range:  # the axis is laid out again only when it moves
            self._x_range = x_range
            self.plot.setXRange(*x_range, padding=0.0)

    def _columns(self) -> int:
        """Pixel columns of the plot area (a curve needs at most two points each)."""
        return max(100, round(self.plot.getViewBox().width() * self.devicePixelRatioF()))

    def _set_legend(self, ids: list[int]) -> None:
        if ids == self._legend_ids:
            return  # the same faces: no new layout
        self._legend_ids = list(ids)
        entries = [
            f'<span style="color:{track_colour(tid).name()}">■</span> #{tid}'
            for tid in ids[:MAX_LEGEND]
        ]
        if len(ids) > MAX_LEGEND:
            entries.append(f"+{len(ids) - MAX_LEGEND}")
        self.legend.setText("&nbsp;&nbsp; ".join(entries) if entries else "no face in view")

    def _set_gone_count(self, n: int) -> None:
        text = f"Show {n} earlier face{'s' if n != 1 else ''}"
        if self.show_gone.text() != text:
            self.show_gone.setText(text)
            self.show_gone.setEnabled(n > 0)
            if n == 0:  # a new session: no tick left on a box of nothing (no refresh: none)
                self.show_gone.blockSignals(True)
                self.show_gone.setChecked(False)
                self.show_gone.blockSignals(False)

    def _refresh_table(self, store: TrackStore, ids: list[int], n_current: int) -> None:
        self.table.setRowCount(len(ids))
        for row, tid in enumerate(ids):
            rec = store.tracks[tid]
            face = rec.last
            gone = row >= n_current
            scored = face.n_scored > 0
            cells = [
                f"#{tid}" + (" (gone)" if gone else ""),
                f"{100 * face.running_score:.0f}%" if scored else "–",
                f"{100 * face.window_score:.0f}%" if scored else "–",
                f"{100 * face.fake_share:.0f}%" if scored else "–",
                str(face.n_scored),
                verdict_word(face),
            ]
            fg = QBrush(QColor(140, 140, 140) if gone else QColor(0, 0, 0))
            for col, text in enumerate(cells):
                item = self.table.item(row, col)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(row, col, item)
                item.setText(text)  # Qt repaints a cell only when its value changed
                item.setForeground(fg)
            swatch = self.table.item(row, 0)
            swatch.setBackground(QBrush(track_colour(tid).lighter(160)))
            verdict = self.table.item(row, 5)
            verdict.setBackground(QBrush(face_colour(face).lighter(130)))
