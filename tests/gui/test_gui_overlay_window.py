"""Overlay mode: the click-through window lies over the running source's region.

Widgets run offscreen; screen and window sources read a private Xvfb server
(mss and python-xlib use ``$DISPLAY``), with a real X window for ``window:``
sources. The overlay takes its place from the running source, which the
session's capture thread opened: nothing opens the source a second time.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from mesolive.align.crop import crop_bounds
from mesolive.gui.overlay_window import OverlayWindow
from mesolive.gui.presenter import State
from mesolive.models.registry import get_spec
from tests.gui.conftest import make_face, make_result

pytestmark = pytest.mark.gui

needs_xvfb = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb (apt xvfb)")
WAIT_MS = 30_000


@pytest.fixture
def display(xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return xvfb


def _geometry(window) -> tuple[int, int, int, int] | None:
    win = window.overlay.window
    if win is None or not win.isVisible():
        return None
    g = win.geometry()
    return g.x(), g.y(), g.width(), g.height()


def test_overlay_window_lies_over_a_region_and_lets_clicks_through(qtbot):
    win = OverlayWindow()
    qtbot.addWidget(win)
    win.place((100, 80, 640, 360))
    g = win.geometry()
    assert (g.x(), g.y(), g.width(), g.height()) == (100, 80, 640, 360)
    flags = win.windowFlags()
    for flag in (
        Qt.WindowType.WindowTransparentForInput,
        Qt.WindowType.WindowStaysOnTopHint,
        Qt.WindowType.FramelessWindowHint,
    ):
        assert flags & flag, flag
    assert win.testAttribute(Qt.WidgetAttribute.WA_TranslucentBackground)
    assert win.testAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)

    # a frame of the region's size maps 1:1; the shape keeps the boxes and labels only
    face = make_face(1, (100, 100, 200, 220), 0.9)
    win.set_result(make_result([face], size=(640, 360)))
    mask = win._mask()
    assert mask.contains(QPoint(100, 150))  # the box's left edge
    assert mask.contains(QPoint(105, 90))  # its label above it
    assert not mask.contains(QPoint(150, 160))  # the face itself stays visible
    assert not mask.contains(QPoint(400, 300))


@needs_xvfb
def test_overlay_covers_the_running_screen_source(window, qtbot, display):
    assert window.start_source("screen:1@100,80,640,360")
    window.set_overlay_mode(True)
    assert window.act_overlay.isChecked()
    qtbot.waitUntil(lambda: _geometry(window) == (100, 80, 640, 360), timeout=WAIT_MS)
    # the screen holds the overlay: each box is drawn clear of the session's crop
    scale = get_spec(window.presenter.config.models[0]).preprocess.scale
    x1, y1, x2, y2 = _box_drawn(window)
    cx1, cy1, cx2, cy2 = crop_bounds(KPS, scale)
    assert x1 < cx1 and y1 < cy1 and x2 > cx2 and y2 > cy2
    window.stop()
    assert window.presenter.state is State.STOPPED
    window.set_overlay_mode(False)
    assert window.overlay.window is None and not window.act_overlay.isChecked()


@needs_xvfb
def test_overlay_follows_a_window_source(window, qtbot, display):
    from Xlib import X
    from Xlib import display as xdisplay

    disp = xdisplay.Display(display)
    try:
        screen = disp.screen()
        xwin = screen.root.create_window(
            210, 150, 320, 200, 0, screen.root_depth, X.InputOutput, X.CopyFromParent
        )
        xwin.set_wm_name(b"Team call")
        xwin.map()
        disp.sync()
        deadline = time.monotonic() + 5
        while xwin.get_attributes().map_state != X.IsViewable:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert window.start_source("window:Team call")
        window.set_overlay_mode(True)
        qtbot.waitUntil(lambda: _geometry(window) == (210, 150, 320, 200), timeout=WAIT_MS)
        xwin.configure(x=300, y=260)
        disp.sync()
        qtbot.waitUntil(lambda: _geometry(window) == (300, 260, 320, 200), timeout=WAIT_MS)
        assert _box_drawn(window) == [285, 115, 355, 215]  # its own pixels: boxes on faces
        window.stop()
    finally:
        disp.close()


KPS = np.array([[300, 150], [340, 152], [320, 175], [305, 200], [335, 201]], np.float32)
FACE = replace(make_face(1, (285, 115, 355, 215), 0.9), kps=KPS)  # a FAKE face, red


def _box_drawn(window) -> list[float]:
    return [float(v) for v in window.overlay.window.overlay.box_of(FACE)]


@pytest.mark.parametrize("scale", [1.0, 1 / 1.3])
def test_a_captured_overlay_draws_nothing_the_classifier_reads(qtbot, scale: float) -> None:
    """Over a screen: source the overlay is in the next frame; a box on the face went into
    the crop and turned genuine faces FAKE (a red box feeds itself)."""
    from PySide6.QtGui import QImage, QPainter

    from mesolive.classify.preprocess import Preprocess
    from mesolive.gui.overlay import FrameToView
    from tests.gui.test_gui_overlay import qimage_to_rgb

    kps, result = KPS, make_result([FACE], size=(640, 480))
    contract = Preprocess(scale=scale)

    def crop_after_painting(win: OverlayWindow) -> np.ndarray:
        img = QImage(640, 480, QImage.Format.Format_RGB888)
        img.fill(0)
        p = QPainter(img)
        win.overlay.draw(p, result, FrameToView(), {1: [0.9] * 10})
        p.end()
        return contract.cut(qimage_to_rgb(img), kps[None])

    win = OverlayWindow()
    qtbot.addWidget(win)
    assert crop_after_painting(win).any()  # on the face: the classifier reads the box
    win.keep_clear_of_crops(scale)
    assert not crop_after_painting(win).any()
    win.keep_clear_of_crops(None)  # a source with its own pixels comes next: boxes on faces
    assert crop_after_painting(win).any()


@needs_xvfb
def test_a_lost_live_source_shows_no_stale_verdict(window, qtbot, display):
    """The call's window closes: the last frame stays, dimmed, under the reason, with no
    box (a green "real" on a frame that is no longer live was false assurance); the view
    is live again once the window is back."""
    from Xlib import display as xdisplay

    from tests.test_sources_x11 import BLUE, make_window

    disp = xdisplay.Display(display)
    try:
        call = make_window(disp, "Lost call", 40, 40, 320, 240, BLUE)
        assert window.start_source("window:Lost call")
        qtbot.waitUntil(lambda: window.video.painted >= 3, timeout=WAIT_MS)
        assert window.video.lost == ""
        call.destroy()
        disp.sync()
        qtbot.waitUntil(lambda: window.video.lost != "", timeout=WAIT_MS)
        assert "Lost call" in window.video.lost and window.video.result is not None
        make_window(disp, "Lost call", 40, 40, 320, 240, BLUE)
        qtbot.waitUntil(lambda: window.video.lost == "", timeout=WAIT_MS)
        assert window.banner.label.text().startswith("reconnected")  # and says so
        window.stop()
    finally:
        disp.close()
