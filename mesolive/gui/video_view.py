"""The live video widget: the newest frame, scaled to fit, with the face overlay.

Frames arrive as immutable :class:`FrameResult` objects through
:meth:`VideoView.set_result`, which only stores the result and schedules a
repaint: when several results arrive before Qt gets to paint (the GUI thread
was busy), only the newest is drawn and the others are counted in
:attr:`superseded`. Qt folds pending ``update()`` calls into one paint, so
this is the "latest result wins" hand-off without a polling timer and
without adding a timer period of latency.

Scaling a 720p frame to the view and converting it to a ``QImage`` took
the GUI thread 2-7 ms a frame, 30 times a second. The inference thread does
it instead, through the view's :class:`FrameScaler`, right after it analysed
the frame (OpenCV lets go of the GIL meanwhile); the paint only draws the
prepared image. A frame nobody prepared (a result fed by hand, the first
frames after a resize) is scaled at the paint, as before.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence

import cv2
import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from mesolive.gui.overlay import FrameToView, OverlayPainter
from mesolive.types import Frame, FrameResult

#: ``(frame index, capture time, width, height)``: a frame scaled to a size in device pixels.
ScaledKey = tuple[int, float, int, int]


def bgr_to_qimage(image: np.ndarray) -> QImage:
    """An owned ``QImage`` (RGB32) of a (H, W, 3) uint8 BGR array.

    ``QImage(buffer, …)`` does not own the buffer (house style H.4), so the
    image is copied before it is returned; the array may then go away.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8 BGR, got {image.shape} {image.dtype}")
    bgra = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)  # RGB32 in memory is B, G, R, 0xFF
    h, w = bgra.shape[:2]
    qimg = QImage(bgra.data, w, h, bgra.strides[0], QImage.Format.Format_RGB32)
    return qimg.copy()


def scaled_size(frame_w: int, frame_h: int, area: tuple[int, int, float]) -> tuple[int, int]:
    """Device pixels a ``frame_w`` × ``frame_h`` frame fills in a view of ``(w, h, dpr)``."""
    w, h, dpr = area
    m = FrameToView.fit(frame_w, frame_h, QRectF(0, 0, w, h))
    return max(1, round(frame_w * m.scale * dpr)), max(1, round(frame_h * m.scale * dpr))


def scale_to_qimage(image: np.ndarray, size: tuple[int, int], dpr: float) -> QImage:
    """An owned ``QImage`` of a (H, W, 3) uint8 BGR frame resized to ``size`` (device pixels)."""
    w, h = size
    if (w, h) != (image.shape[1], image.shape[0]):
        # INTER_AREA costs ~6x INTER_LINEAR (4 vs 0.7 ms at 720p); it only
        # matters against aliasing when shrinking by more than half.
        interp = cv2.INTER_AREA if 2 * w < image.shape[1] else cv2.INTER_LINEAR
        image = cv2.resize(image, (w, h), interpolation=interp)
    img = bgr_to_qimage(image)
    img.setDevicePixelRatio(dpr)
    return img


class FrameScaler:
    """Frames scaled for a :class:`VideoView` by another thread, the newest few kept.

    The view says how large it is (:attr:`area`, from the GUI thread); the
    inference thread calls :meth:`prepare` with each frame it analysed, before
    it sends the result; the view's paint takes the image with :meth:`take`.
    A ``QImage`` is safe to hand between threads (implicitly shared, with an
    atomic reference count), and this one is owned (see :func:`bgr_to_qimage`).
    """

    KEEP = 3  # a result replaced before its paint, one painted, one on its way

    def __init__(self) -> None:
        self.area: tuple[int, int, float] | None = None  # view (w, h, dpr); None: not shown yet
        self._lock = threading.Lock()
        self._ready: deque[tuple[ScaledKey, QImage]] = deque(maxlen=self.KEEP)

    def prepare(self, frame: Frame) -> None:
        """Scale ``frame`` to the view's size now (called by the thread that analysed it)."""
        area = self.area
        if area is None:
            return
        size = scaled_size(frame.width, frame.height, area)
        img = scale_to_qimage(frame.image, size, area[2])
        with self._lock:
            self._ready.append(((frame.index, frame.t_capture, *size), img))

    def take(self, key: ScaledKey) -> QImage | None:
        """The image prepared for ``key``, or None."""
        with self._lock:
            for k, img in self._ready:
                if k == key:
                    return img
        return None

    def clear(self) -> None:
        with self._lock:
            self._ready.clear()


def render_annotated(
    result: FrameResult,
    overlay: OverlayPainter,
    history: Mapping[int, Sequence[float]] | None = None,
) -> QImage:
    """The frame at its own resolution with the overlay drawn on it (snapshots)."""
    img = bgr_to_qimage(result.frame.image)
    painter = QPainter(img)
    try:
        scale = max(1.0, result.frame.width / 960)
        style = OverlayPainter(line_width=overlay.line_width * scale)
        style.draw(painter, result, FrameToView(), history)
    finally:
        painter.end()
    return img


class VideoView(QWidget):
    """Shows the newest result; draws nothing but a hint until the first one.

    Attributes
    ----------
    painted
        Distinct results drawn so far.
    superseded
        Results replaced by a newer one before they were drawn.
    scaled_here
        Frames the paint had to scale itself (nobody had prepared them).
    t_first_paint
        ``time.monotonic()`` when the first frame was drawn, or None.
    scaler
        Hand it to the thread that analyses the frames (see :class:`FrameScaler`).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 180)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        # a click on the video takes the keyboard back from a check box or field, so
        # Space pauses again (a ticked box kept it, and Space unticked it unseen)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.overlay = OverlayPainter()
        self.history: Callable[[], Mapping[int, Sequence[float]]] | None = None
        self.placeholder = "No source. Press Ctrl+O to choose a camera, screen, window or file."
        self._result: FrameResult | None = None
        self._last: FrameResult | None = None  # kept when an error takes the frame's place
        self._unpainted = False
        self._cache_key: ScaledKey | None = None
        self._cache_img: QImage | None = None
        self.scaler = FrameScaler()
        self.painted = 0
        self.superseded = 0
        self.scaled_here = 0
        self.t_first_paint: float | None = None
        self.frozen = False  # testing hook: keep showing the current result
        self.lost = ""  # why the live source gives no frames now; the last frame is shown dimmed
        self.painted_callbacks: list[Callable[[FrameResult], None]] = []

    # -- data in ----------------------------------------------------------------------

    def set_result(self, result: FrameResult | None) -> bool:
        """Show ``result`` at the next paint (newest wins).

        Returns True when it replaced a result that was never drawn.
        """
        if self.frozen:
            return False
        replaced = self._unpainted and result is not None
        if replaced:
            self.superseded += 1
        self._result = result
        if result is not None:
            self._last = result
        self._unpainted = result is not None
        self.update()
        return replaced

    @property
    def result(self) -> FrameResult | None:
        """The result shown (or about to be shown)."""
        return self._result

    @property
    def last_result(self) -> FrameResult | None:
        """The session's newest result, also after an error took its place in the view
        (``clear(..., keep_last=True)``): the frame a session report shows."""
        return self._last

    def set_lost(self, why: str) -> None:
        """A live source stopped giving frames (``why``), or gives them again (``""``).

        While it is lost the last frame stays, dimmed, under the reason, with no
        box: a green "real" box on a frame that is no longer live is false
        assurance.
        """
        self.lost = why
        self.update()

    def clear(self, placeholder: str | None = None, *, keep_last: bool = False) -> None:
        """Show ``placeholder`` (else the one before) instead of a frame; ``keep_last``
        keeps :attr:`last_result` for the report of the session that just failed."""
        if placeholder is not None:
            self.placeholder = placeholder
        self._result = None
        if not keep_last:
            self._last = None
        self.lost = ""
        self._unpainted = False
        self._cache_key = None
        self._cache_img = None
        self.scaler.clear()
        self.update()

    # -- geometry ---------------------------------------------------------------------

    def sizeHint(self) -> QSize:
        return QSize(960, 540)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.scaler.area = (self.width(), self.height(), self.devicePixelRatioF())

    def frame_to_view(self) -> FrameToView:
        """Where the current frame is drawn, in widget coordinates."""
        r = self._result
        if r is None:
            return FrameToView()
        return FrameToView.fit(r.frame.width, r.frame.height, QRectF(self.rect()))

    def image_rect(self) -> QRectF:
        """The rectangle the frame occupies in widget coordinates (empty before one)."""
        r = self._result
        if r is None:
            return QRectF()
        m = self.frame_to_view()
        return QRectF(m.dx, m.dy, r.frame.width * m.scale, r.frame.height * m.scale)

    # -- painting ----------------------------------------------------------------------

    def _scaled_image(self, result: FrameResult) -> QImage:
        """The frame resized to the view in device pixels: prepared, cached, or made here."""
        frame = result.frame
        area = (self.width(), self.height(), self.devicePixelRatioF())
        self.scaler.area = area  # also a change of screen (dpr) without a resize
        size = scaled_size(frame.width, frame.height, area)
        key = (frame.index, frame.t_capture, *size)
        if key != self._cache_key or self._cache_img is None:
            img = self.scaler.take(key)
            if img is None:
                img = scale_to_qimage(frame.image, size, area[2])
                self.scaled_here += 1
            self._cache_key, self._cache_img = key, img
        return self._cache_img

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), QColor(24, 24, 24))
            result = self._result
            if result is None:
                painter.setPen(QColor(200, 200, 200))
                painter.drawText(
                    self.rect().adjusted(20, 20, -20, -20),
                    Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                    self.placeholder,
                )
                return
            target = self.image_rect()
            painter.drawImage(target.topLeft(), self._scaled_image(result))
            if self.lost:
                painter.fillRect(target, QColor(0, 0, 0, 170))
                painter.setPen(QColor(235, 235, 235))
                painter.drawText(
                    target.adjusted(20, 20, -20, -20),
                    Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                    f"{self.lost}\n\n(the last frame before it was lost)",
                )
                return
            history = self.history() if self.history is not None else None
            self.overlay.draw(painter, result, self.frame_to_view(), history)
        finally:
            painter.end()
        if self._unpainted and result is not None:
            self._unpainted = False
            self.painted += 1
            if self.t_first_paint is None:
                self.t_first_paint = time.monotonic()
            for cb in self.painted_callbacks:
                cb(result)
