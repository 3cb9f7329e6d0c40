"""Choosing a source: cameras, screens, windows, a file, a URL, or a dragged region."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QRubberBand,
    QVBoxLayout,
    QWidget,
)

from mesolive.errors import MesoliveError
from mesolive.gui.video_view import bgr_to_qimage
from mesolive.redact import redact

log = logging.getLogger(__name__)

VIDEO_FILTER = (
    "Videos and images (*.mp4 *.mkv *.avi *.mov *.webm *.m4v *.jpg *.jpeg *.png *.bmp);;"
    "All files (*)"
)
_KIND_TITLES = {"webcam": "Camera", "screen": "Screen", "window": "Window", "test": "Demo"}


def grab_monitor(monitor: int) -> np.ndarray:
    """A screenshot of mss monitor ``monitor`` as (H, W, 3) uint8 BGR.

    The grabber is created, used and closed here, in the calling thread (mss
    handles are bound to their thread).

    Raises
    ------
    SourceError
        No display, or no such monitor.
    """
    from mesolive.errors import SourceError
    from mesolive.sources.screen import grab_bgr, monitor_regions, new_grabber

    grabber = new_grabber()
    try:
        regions = monitor_regions(grabber)
        if not 0 <= monitor < len(regions):
            raise SourceError(f"screen:{monitor}: no such screen (found {len(regions) - 1})")
        return grab_bgr(grabber, regions[monitor])
    finally:
        grabber.close()


def _span(a: QPoint, b: QPoint) -> QRect:
    """The rectangle between two drag points (QRect(a, b) would add a pixel)."""
    return QRect(min(a.x(), b.x()), min(a.y(), b.y()), abs(b.x() - a.x()), abs(b.y() - a.y()))


class _RegionCanvas(QWidget):
    """Shows a screenshot scaled to fit; a mouse drag selects a rectangle on it."""

    selected = Signal(QRect)  # in screenshot pixels

    def __init__(self, image: np.ndarray, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._img = bgr_to_qimage(image)
        self._band = QRubberBand(QRubberBand.Shape.Rectangle, self)
        self._origin: QPoint | None = None
        self.selection: QRect | None = None  # in image pixels
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setMinimumSize(480, 270)

    def sizeHint(self) -> QSize:
        return self._img.size().scaled(QSize(1200, 700), Qt.AspectRatioMode.KeepAspectRatio)

    def _scale(self) -> float:
        iw, ih = self._img.width(), self._img.height()
        return min(self.width() / iw, self.height() / ih) if iw and ih else 1.0

    def to_image(self, r: QRect) -> QRect:
        s = self._scale()
        img = QRect(round(r.x() / s), round(r.y() / s), round(r.width() / s), round(r.height() / s))
        return img.intersected(self._img.rect())

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        s = self._scale()
        p.drawImage(
            QRect(0, 0, round(self._img.width() * s), round(self._img.height() * s)), self._img
        )
        p.end()

    def mousePressEvent(self, e: QMouseEvent) -> None:
        self._origin = e.position().toPoint()
        self._band.setGeometry(QRect(self._origin, QSize()))
        self._band.show()

    def mouseMoveEvent(self, e: QMouseEvent) -> None:
        if self._origin is not None:
            self._band.setGeometry(_span(self._origin, e.position().toPoint()))

    def mouseReleaseEvent(self, e: QMouseEvent) -> None:
        if self._origin is None:
            return
        r = _span(self._origin, e.position().toPoint())
        self._origin = None
        img = self.to_image(r)
        if img.width() >= 16 and img.height() >= 16:
            self.selection = img
            self.selected.emit(img)
        else:
            self._band.hide()


class RegionPickerDialog(QDialog):
    """Drag a rectangle on a screenshot of one screen → ``screen:N@x,y,w,h``."""

    def __init__(self, monitor: int, image: np.ndarray, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Drag a region of screen {monitor}")
        self.monitor = monitor
        self.canvas = _RegionCanvas(image)
        self.info = QLabel("Drag over the part of the screen to watch (e.g. the call window).")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setEnabled(False)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.canvas.selected.connect(self._on_selected)
        lay = QVBoxLayout(self)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.info)
        lay.addWidget(buttons)

    def _on_selected(self, r: QRect) -> None:
        self.info.setText(f"Region {r.width()}×{r.height()} at {r.x()},{r.y()}")
        self.ok_button.setEnabled(True)

    def uri(self) -> str:
        """The chosen region as a source URI ('' before a selection)."""
        r = self.canvas.selection
        if r is None:
            return ""
        return f"screen:{self.monitor}@{r.x()},{r.y()},{r.width()},{r.height()}"


class SourcePickerDialog(QDialog):
    """Lists the sources found here; also a file, a URL, or a screen region."""

    def __init__(self, current: str = "", recent: list[str] | None = None, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a source")
        self.resize(560, 460)
        self.list = QListWidget()
        self.uri_edit = QLineEdit()
        self.uri_edit.setPlaceholderText("webcam:0, screen:1, window:Zoom, a file, rtsp://…")
        # a stream's password shows as *** (the window may be seen on a call); kept here
        self._masked: dict[str, str] = {}  # as shown → as typed
        self._show(current)
        self.uri_edit.setClearButtonEnabled(True)
        self.refresh_button = QPushButton("Refresh")
        self.file_button = QPushButton("Open file…")
        self.region_button = QPushButton("Pick screen region…")
        self.region_button.setToolTip("drag a rectangle on a screenshot of the selected screen")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.refresh_button)
        row.addWidget(self.file_button)
        row.addWidget(self.region_button)
        row.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Sources found on this computer:"))
        lay.addWidget(self.list, 1)
        lay.addLayout(row)
        lay.addWidget(QLabel("Source (URI, file path or stream URL):"))
        lay.addWidget(self.uri_edit)
        lay.addWidget(buttons)
        self._recent = list(recent or [])
        self.refresh_button.clicked.connect(self.refresh)
        self.file_button.clicked.connect(self._open_file)
        self.region_button.clicked.connect(self._pick_region)
        self.list.currentItemChanged.connect(self._item_changed)
        self.list.itemDoubleClicked.connect(lambda _i: self._accept())
        self.refresh()

    def refresh(self) -> None:
        """List the sources again; the one in the field stays, selected where it is listed.

        Filling the list made its first entry current, which wrote
        ``screen:1`` into the field over the last source: OK or Enter then
        captured the whole screen instead of playing the last file again.
        """
        from mesolive.sources.registry import list_sources

        keep = self.uri()
        self.list.blockSignals(True)
        self.list.clear()
        found = list_sources()  # quick, never raises
        for info in found:
            if info.kind == "window" and info.uri.startswith("window:mesolive"):
                continue  # the app's own windows: watching itself is no use
            title = _KIND_TITLES.get(info.kind, info.kind)
            item = QListWidgetItem(f"{title}: {info.label}" if info.kind == "test" else info.label)
            item.setData(Qt.ItemDataRole.UserRole, info.uri)
            self.list.addItem(item)
        listed = {i.uri for i in found}
        for uri in self._recent:
            if uri not in listed:
                item = QListWidgetItem(f"Recent: {redact(uri)}")  # on screen: a call may see it
                item.setData(Qt.ItemDataRole.UserRole, uri)
                self.list.addItem(item)
        if not any(i.kind == "webcam" for i in found):
            note = QListWidgetItem("(no camera found)")
            note.setFlags(Qt.ItemFlag.NoItemFlags)
            self.list.insertItem(0, note)
        rows = [self.list.item(r).data(Qt.ItemDataRole.UserRole) for r in range(self.list.count())]
        self.list.setCurrentRow(rows.index(keep) if keep in rows else -1)
        self.list.blockSignals(False)

    def uri(self) -> str:
        """The source in the field, with the password it was given (shown as ``***``)."""
        text = self.uri_edit.text().strip()
        return self._masked.get(text, text)

    def _show(self, uri: str) -> None:
        """Put ``uri`` in the field with its password masked; :meth:`uri` gives it back whole.

        Once the masked text is edited, what is typed is taken as it stands.
        """
        shown = redact(uri)
        if shown != uri:
            self._masked[shown] = uri
            self.uri_edit.setToolTip(
                "the saved password shows as ***; type the address whole to change it"
            )
        self.uri_edit.setText(shown)

    def _item_changed(self, item: QListWidgetItem | None, _prev: object = None) -> None:
        if item is not None and item.data(Qt.ItemDataRole.UserRole):
            self._show(str(item.data(Qt.ItemDataRole.UserRole)))

    def _open_file(self) -> None:
        shown = Path(self.uri()).expanduser()  # start beside the file in the field, if any
        start = str(shown.parent) if shown.is_file() else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open a video or image", start, VIDEO_FILTER)
        if path:
            self.uri_edit.setText(path)

    def selected_monitor(self) -> int:
        """The screen of the selected/typed ``screen:`` URI, else 1."""
        uri = self.uri()
        if uri.startswith("screen:"):
            body = uri[len("screen:") :].split("@")[0].split("?")[0]
            if body.isdigit():
                return int(body)
        return 1

    def _pick_region(self) -> None:
        monitor = self.selected_monitor()
        try:
            image = grab_monitor(monitor)
        except MesoliveError as e:
            QMessageBox.warning(self, "Screen region", str(e))
            return
        dlg = RegionPickerDialog(monitor, image, self)
        if dlg.exec() == QDialog.DialogCode.Accepted and dlg.uri():
            self.uri_edit.setText(dlg.uri())

    def _accept(self) -> None:
        if self.uri():
            self.accept()
