"""Overlay mode: the click-through window lies over the captured region.

Widgets run offscreen; the regions come from a private Xvfb server (mss and
python-xlib read it through ``$DISPLAY``), with a real X window for
``window:`` sources.
"""

from __future__ import annotations

import shutil
import time

import pytest
from PySide6.QtCore import QPoint, Qt

from mesolive.errors import SourceError
from mesolive.gui.overlay_window import OverlayWindow, capture_region
from tests.gui.conftest import make_face, make_result

pytestmark = [
    pytest.mark.gui,
    pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb (apt xvfb)"),
]


@pytest.fixture
def display(xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return xvfb


def test_overlay_covers_a_screen_region_and_lets_clicks_through(qtbot, display):
    assert capture_region("screen:1@100,80,640,360") == (100, 80, 640, 360)
    win = OverlayWindow("screen:1@100,80,640,360")
    qtbot.addWidget(win)
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


def test_overlay_follows_a_window_source(qtbot, display):
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
        win = OverlayWindow("window:Team call")
        qtbot.addWidget(win)
        g = win.geometry()
        assert (g.x(), g.y(), g.width(), g.height()) == (210, 150, 320, 200)
        xwin.configure(x=300, y=260)
        disp.sync()
        qtbot.waitUntil(
            lambda: (win.geometry().x(), win.geometry().y()) == (300, 260), timeout=5000
        )
    finally:
        disp.close()


def test_overlay_refuses_cameras_and_files(display):
    with pytest.raises(SourceError, match="screen or window"):
        capture_region("/some/clip.mp4")
