"""Overlay mode: the click-through window lies over the running source's region.

Widgets run offscreen; screen and window sources read a private Xvfb server
(mss and python-xlib use ``$DISPLAY``), with a real X window for ``window:``
sources. The overlay takes its place from the running source, which the
session's capture thread opened: nothing opens the source a second time.
"""

from __future__ import annotations

import shutil
import time

import pytest
from PySide6.QtCore import QPoint, Qt

from mesolive.gui.overlay_window import OverlayWindow
from mesolive.gui.presenter import State
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
        window.stop()
    finally:
        disp.close()
