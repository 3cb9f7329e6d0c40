"""Overlay mode: boxes and scores drawn on top of the captured screen region itself.

A frameless, always-on-top, click-through window placed exactly over the
region a ``screen:`` or ``window:`` source captures. Clicks go through it to
the call below (``Qt.WindowTransparentForInput``, an X11 input shape on xcb).
With a compositing window manager the window is translucent; without one
(plain X11) its shape is cut down to the boxes and labels, so the call stays
visible either way.

Over a ``screen:`` source (or a window read from the screen under it) the
window is itself on the screen being captured, so what it draws is captured
too: there each box is drawn just outside the face's crop square
(:meth:`OverlayWindow.keep_clear_of_crops`), and nothing drawn reaches the
classifier. A window's own pixels (X Composite) never hold the overlay.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence

import numpy as np
from PySide6.QtCore import QRect, QRectF, Qt
from PySide6.QtGui import QGuiApplication, QPainter, QPaintEvent, QRegion
from PySide6.QtWidgets import QWidget

from mesolive.align.crop import crop_bounds
from mesolive.gui.overlay import FrameToView, OverlayPainter, detection_box
from mesolive.types import FaceResult, FrameResult

log = logging.getLogger(__name__)


def overlay_problem() -> str | None:
    """Why overlay mode cannot work on this platform, or None."""
    platform = QGuiApplication.platformName()
    if platform == "wayland":
        return "overlay mode needs X11 (Wayland does not let a window place itself on top)"
    if sys.platform == "darwin":
        return "overlay mode is not supported on macOS yet"
    return None


def _compositing() -> bool:
    """Whether an X11 compositing manager runs (then real translucency works)."""
    if QGuiApplication.platformName() != "xcb":
        return True
    try:
        from Xlib import X, display

        disp = display.Display()
        try:
            atom = disp.intern_atom(f"_NET_WM_CM_S{disp.get_default_screen()}")
            return disp.get_selection_owner(atom) != X.NONE
        finally:
            disp.close()
    except Exception as e:  # noqa: BLE001 (no python-xlib or display: use a shape)
        log.debug("compositor check failed: %s", e)
        return False


class OverlayWindow(QWidget):
    """Draws the newest result's boxes over a screen rectangle.

    It knows nothing of sources: :class:`~mesolive.gui.overlay_controller.OverlayController`
    places it over the running source's capture region (:meth:`place`) and
    hands it the results.
    """

    def __init__(self) -> None:
        super().__init__(None)
        flags = (
            Qt.WindowType.Window
            | Qt.WindowType.FramelessWindowHint
            | Qt.WindowType.WindowStaysOnTopHint
            | Qt.WindowType.WindowTransparentForInput
            | Qt.WindowType.Tool
            | Qt.WindowType.NoDropShadowWindowHint
        )
        self.setWindowFlags(flags)
        self.setWindowTitle("mesolive overlay")
        self.setAttribute(Qt.WidgetAttribute.WA_TranslucentBackground, True)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating, True)
        self.overlay = OverlayPainter(line_width=3.0)
        self.history: Mapping[int, Sequence[float]] | None = None
        self._result: FrameResult | None = None
        self._use_mask = not _compositing()
        self.region: tuple[int, int, int, int] | None = None

    def keep_clear_of_crops(self, scale: float | None) -> None:
        """Draw each box just outside the face's crop square at contract ``scale``, or
        (None) on the face's detection box.

        For a capture that sees this window (the screen under it): a box drawn on
        the face would be read back into the next frame's crop, and a red box
        makes the face look more fake, which makes the box red.
        """
        if scale is None:
            self.overlay.box_of = detection_box
            return
        pad = self.overlay.line_width + 2  # frame pixels: the pen's half width and more

        def clear(face: FaceResult) -> np.ndarray:
            x1, y1, x2, y2 = crop_bounds(face.kps, scale)
            return np.array([x1 - pad, y1 - pad, x2 + pad, y2 + pad])

        self.overlay.box_of = clear

    def place(self, region: tuple[int, int, int, int]) -> None:
        """Lie over ``(x, y, w, h)``, a rectangle in virtual-screen pixels."""
        self.region = region
        x, y, w, h = region
        dpr = self.devicePixelRatioF() or 1.0  # mss speaks pixels, Qt logical units
        self.setGeometry(QRect(round(x / dpr), round(y / dpr), round(w / dpr), round(h / dpr)))

    def set_result(
        self, result: FrameResult | None, history: Mapping[int, Sequence[float]] | None = None
    ) -> None:
        self._result = result
        self.history = history
        if self._use_mask:
            self.setMask(self._mask())
        self.update()

    def _to_view(self) -> FrameToView:
        r = self._result
        if r is None:
            return FrameToView()
        return FrameToView.fit(r.frame.width, r.frame.height, QRectF(self.rect()))

    def _mask(self) -> QRegion:
        region = self.overlay.mask(self._result, self._to_view())
        if region.isEmpty():  # an empty mask would mean "no mask": keep one pixel
            region = QRegion(0, 0, 1, 1)
        return region

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        try:
            p.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
            p.fillRect(self.rect(), Qt.GlobalColor.transparent)
            p.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceOver)
            if self._result is not None:
                self.overlay.draw(p, self._result, self._to_view(), self.history)
        finally:
            p.end()
