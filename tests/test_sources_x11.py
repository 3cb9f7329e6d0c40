"""``screen:`` and ``window:`` on a real X server (Xvfb), with real windows drawn on it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from mesolive.errors import SourceError
from mesolive.pipeline.capture import CaptureThread
from mesolive.pipeline.mailbox import LatestSlot
from mesolive.sources.registry import list_sources, make_source
from mesolive.sources.screen import Region, ScreenSource, hide_own_windows
from mesolive.sources.window import WindowSource
from mesolive.types import Frame, ReadStatus

pytestmark = pytest.mark.skipif(
    shutil.which("Xvfb") is None, reason="needs the Xvfb binary (apt xvfb)"
)

from .conftest import XVFB_SIZE, run_xvfb  # noqa: E402

SCREEN_W, SCREEN_H = XVFB_SIZE
BLUE = 0x3366CC  # 0xRRGGBB on a 24-bit TrueColor visual
BLUE_BGR = (0xCC, 0x66, 0x33)
GREEN = 0x22AA44
GREEN_BGR = (0x44, 0xAA, 0x22)


@pytest.fixture
def xdisplay(xvfb: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``$DISPLAY`` set to the Xvfb server, and a connection for drawing windows.

    Windows made on it are destroyed when the test ends (the connection closes).
    Xvfb has the Composite extension: ``window:`` reads windows' own pixels.
    """
    yield from connect_to(xvfb, monkeypatch)


@pytest.fixture(scope="module")
def xvfb_plain() -> Iterator[str]:
    """An Xvfb server without the Composite extension (as some X servers are)."""
    yield from run_xvfb("-extension", "Composite")


@pytest.fixture
def xdisplay_plain(xvfb_plain: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """As ``xdisplay``, on the server without Composite."""
    yield from connect_to(xvfb_plain, monkeypatch)


def connect_to(name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from Xlib import display

    monkeypatch.setenv("DISPLAY", name)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    disp = display.Display(name)
    yield disp
    disp.close()


def make_window(disp: Any, title: str, x: int, y: int, w: int, h: int, color: int) -> Any:
    from Xlib import X

    screen = disp.screen()
    win = screen.root.create_window(
        x, y, w, h, 0, screen.root_depth, X.InputOutput, X.CopyFromParent, background_pixel=color
    )
    # As toolkits do: UTF-8 in _NET_WM_NAME, a Latin-1 approximation in WM_NAME.
    win.set_wm_name(title.encode("latin-1", "replace"))
    utf8 = disp.intern_atom("UTF8_STRING")
    win.change_property(disp.intern_atom("_NET_WM_NAME"), utf8, 8, title.encode())
    map_and_wait(disp, win)
    return win


def map_and_wait(disp: Any, win: Any) -> None:
    from Xlib import X

    win.map()
    disp.sync()
    deadline = time.monotonic() + 5
    while win.get_attributes().map_state != X.IsViewable:
        assert time.monotonic() < deadline, "window never became viewable"
        time.sleep(0.01)


def read_frame(source: ScreenSource | WindowSource, tries: int = 50) -> Frame:
    for _ in range(tries):
        status, frame, message = source.read(0.5)
        assert status is not ReadStatus.ERROR, message
        if frame is not None:
            return frame
    pytest.fail("no frame")


def test_screen_capture_sees_what_is_drawn(xdisplay: Any) -> None:
    make_window(xdisplay, "blue", 100, 50, 200, 120, BLUE)
    src = make_source("screen:1")
    assert isinstance(src, ScreenSource)
    with src:
        assert src.grab_region == Region(0, 0, SCREEN_W, SCREEN_H)
        frame = read_frame(src)
    assert frame.image.shape == (SCREEN_H, SCREEN_W, 3)
    assert frame.image.dtype == np.uint8 and frame.image.flags["C_CONTIGUOUS"]
    assert tuple(frame.image[100, 150]) == BLUE_BGR  # inside the window
    assert tuple(frame.image[10, 10]) == (0, 0, 0)  # Xvfb -br: black root
    assert tuple(frame.image[50, 100]) == BLUE_BGR and tuple(frame.image[49, 99]) == (0, 0, 0)


def test_the_apps_own_window_is_black_in_a_screen_capture(xdisplay: Any) -> None:
    """Captured, mesolive's window would show the capture again and its faces twice."""
    make_window(xdisplay, "blue", 100, 50, 200, 120, BLUE)
    hide_own_windows((Region(150, 80, 400, 40),))  # as the main window says where it is
    try:
        with make_source("screen:1@100,50,200,120") as src:
            image = read_frame(src).image
    finally:
        hide_own_windows(())
    assert (image[30:70, 50:] == 0).all()  # the part of the app's window inside the region
    assert (image[:30] == np.array(BLUE_BGR, np.uint8)).all()
    assert (image[30:70, :50] == np.array(BLUE_BGR, np.uint8)).all()


def test_screen_region_and_all_screens(xdisplay: Any) -> None:
    make_window(xdisplay, "blue", 100, 50, 200, 120, BLUE)
    with make_source("screen:1@100,50,200,120?fps=60") as src:
        frame = read_frame(src)
    assert frame.image.shape == (120, 200, 3)
    assert (frame.image == np.array(BLUE_BGR, np.uint8)).all()
    with make_source("screen:0") as src:  # all screens together
        assert read_frame(src).image.shape == (SCREEN_H, SCREEN_W, 3)


def test_screen_index_or_region_out_of_range(xdisplay: Any) -> None:
    for uri, fragment in (
        ("screen:2", "no screen 2; this display has 1 screen: screen:1 (800x600)"),
        ("screen:9@0,0,10,10", "no screen 9"),
        ("screen:1@700,500,200,200", "region 700,500,200,200 does not fit in screen 1 (800x600)"),
    ):
        src = make_source(uri)
        with pytest.raises(SourceError) as info:
            src.open()
        assert fragment in str(info.value)
        src.close()


def test_window_is_found_followed_and_lost(xdisplay: Any) -> None:
    make_window(xdisplay, "Some Other App", 0, 0, 50, 50, GREEN)
    win = make_window(xdisplay, "Meso Test Window — call", 100, 50, 200, 120, BLUE)
    src = WindowSource("meso TEST window", refresh=0.0)  # case-insensitive substring
    with src:
        assert src.window_title == "Meso Test Window — call"
        frame = read_frame(src)
        assert src.grab_region == Region(100, 50, 200, 120)
        assert frame.image.shape == (120, 200, 3)
        assert (frame.image == np.array(BLUE_BGR, np.uint8)).all()

        win.configure(x=300, y=200, width=160, height=100)  # moved and resized
        xdisplay.sync()
        frame = read_frame(src)
        assert src.grab_region == Region(300, 200, 160, 100)
        assert (frame.image == np.array(BLUE_BGR, np.uint8)).all()

        win.configure(x=700, y=550)  # partly off screen: its own pixels, all of them
        xdisplay.sync()
        frame = read_frame(src)
        assert src.grab_region == Region(700, 550, 160, 100)
        assert (frame.image == np.array(BLUE_BGR, np.uint8)).all()

        win.unmap()
        xdisplay.sync()
        status, _, message = src.read(0.5)
        assert status is ReadStatus.ERROR and "minimised or hidden" in message

        win.destroy()
        xdisplay.sync()
        status, _, message = src.read(0.5)
        assert status is ReadStatus.ERROR and "was closed" in message


def test_window_exact_title_wins(xdisplay: Any) -> None:
    make_window(xdisplay, "Zoom Meeting", 0, 0, 40, 40, GREEN)
    make_window(xdisplay, "zoom", 200, 200, 60, 60, BLUE)
    with WindowSource("Zoom") as src:
        assert src.window_title == "zoom"


def test_window_title_with_no_match(xdisplay: Any) -> None:
    make_window(xdisplay, "Meso Test Window", 100, 50, 200, 120, BLUE)
    hidden = make_window(xdisplay, "Hidden Thing", 0, 0, 20, 20, GREEN)
    hidden.unmap()
    xdisplay.sync()
    src = make_source("window:No Such Window")
    with pytest.raises(SourceError) as info:
        src.open()
    message = str(info.value)
    assert "no window title contains 'No Such Window'" in message
    assert "'Meso Test Window'" in message and "Hidden" not in message
    with pytest.raises(SourceError, match="'Hidden Thing' is minimised or hidden"):
        make_source("window:hidden thing").open()


def test_list_sources_on_x11(xdisplay: Any) -> None:
    make_window(xdisplay, "Meso Test Window", 100, 50, 200, 120, BLUE)
    found = list_sources()
    uris = [s.uri for s in found]
    assert "screen:1" in uris and "test:" in uris
    assert "window:Meso Test Window" in uris
    screen = next(s for s in found if s.uri == "screen:1")
    assert screen.kind == "screen" and "800x600" in screen.label


def test_capture_thread_retries_a_closed_window(
    xdisplay: Any, warnings_from: Callable[[str], list[str]]
) -> None:
    warnings_logged = warnings_from("mesolive.pipeline.capture")
    win = make_window(xdisplay, "Flaky Window", 10, 10, 64, 48, BLUE)
    statuses: list[tuple[ReadStatus, str]] = []
    slot: LatestSlot[Frame] = LatestSlot()
    thread = CaptureThread(
        WindowSource("Flaky Window", fps=60, refresh=0.05),
        slot,
        on_status=lambda s, m: statuses.append((s, m)),
    )
    thread.start()
    try:
        assert slot.take(5.0) is not None
        win.destroy()
        xdisplay.sync()
        deadline = time.monotonic() + 5
        while not any("retrying in" in m for _, m in statuses):
            assert time.monotonic() < deadline, statuses
            time.sleep(0.02)
        make_window(xdisplay, "Flaky Window", 30, 30, 64, 48, GREEN)
        deadline = time.monotonic() + 10
        while not any(m.startswith("reconnected") for _, m in statuses):
            assert time.monotonic() < deadline, statuses
            time.sleep(0.02)
        frame = slot.take(5.0)
        while frame is not None and tuple(frame.image[0, 0]) != GREEN_BGR:
            frame = slot.take(5.0)
        assert frame is not None and frame.image.shape == (48, 64, 3)
    finally:
        assert thread.stop()
    assert statuses[0] == (ReadStatus.OK, "capturing window:Flaky Window at 60 fps")
    retry = next(m for s, m in statuses if s is ReadStatus.ERROR)
    assert "window 'Flaky Window' was closed" in retry and "retrying in 0.5 s" in retry
    assert not slot.closed  # stop() leaves the slot to its owner
    # the outage is worded for a window (it read "stream lost" for every live source)
    assert warnings_logged[0].startswith(
        "window:Flaky Window: window lost, reconnecting… (window 'Flaky Window' was closed"
    )
    assert warnings_logged[1].startswith("window:Flaky Window: reconnected after ")


def test_a_covered_window_is_read_from_its_own_pixels(xdisplay: Any) -> None:
    win = make_window(xdisplay, "Lower Call", 100, 50, 200, 120, BLUE)
    make_window(xdisplay, "Upper Thing", 150, 80, 200, 120, GREEN)  # covers its lower right
    with make_source("screen:1") as screen:
        assert tuple(read_frame(screen).image[150, 250]) == GREEN_BGR  # covered on screen
    src = WindowSource("lower call", refresh=0.0)
    with src:
        assert xdisplay.has_extension("Composite") and src.note == ""
        frame = read_frame(src)
        assert frame.image.shape == (120, 200, 3) and frame.image.flags["C_CONTIGUOUS"]
        assert (frame.image == np.array(BLUE_BGR, np.uint8)).all()
        assert frame.image.flags["WRITEABLE"]  # owned, not a view of the X reply

        win.configure(x=850, y=700)  # entirely off screen: still its own pixels
        xdisplay.sync()
        frame = read_frame(src)
        assert src.grab_region == Region(850, 700, 200, 120)
        assert (frame.image == np.array(BLUE_BGR, np.uint8)).all()


def test_a_large_window_is_read_whole_in_bands(xdisplay: Any) -> None:
    from Xlib import X

    win = make_window(xdisplay, "Tall Call", 100, 20, 600, 500, BLUE)  # 1.2 MB: two bands
    depth = xdisplay.screen().root_depth
    child = win.create_window(  # its lower part, green: a band boundary falls in it
        0, 300, 600, 200, 0, depth, X.InputOutput, X.CopyFromParent, background_pixel=GREEN
    )
    map_and_wait(xdisplay, child)
    make_window(xdisplay, "Cover", 0, 0, 800, 600, 0x000000)  # hides it all on screen
    with WindowSource("tall call") as src:
        image = read_frame(src).image
    assert image.shape == (500, 600, 3)
    assert (image[:300] == np.array(BLUE_BGR, np.uint8)).all()
    assert (image[300:] == np.array(GREEN_BGR, np.uint8)).all()


def test_a_window_unmapped_or_closed_between_refreshes_is_one_line(
    xdisplay: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    win = make_window(xdisplay, "Going Away", 100, 50, 64, 48, BLUE)
    src = WindowSource("Going Away", refresh=3600.0)  # only the grab notices
    with src:
        read_frame(src)
        win.unmap()
        xdisplay.sync()
        status, frame, message = src.read(0.5)
        assert (status, frame) == (ReadStatus.ERROR, None)
        assert message == "window:Going Away: window 'Going Away' is minimised or hidden"

        map_and_wait(xdisplay, win)  # mapped again: a new pixmap, read as before
        assert (read_frame(src).image == np.array(BLUE_BGR, np.uint8)).all()

        win.destroy()
        xdisplay.sync()
        status, frame, message = src.read(0.5)
        assert (status, frame) == (ReadStatus.ERROR, None)
        assert message.startswith("window:Going Away: window 'Going Away' was closed (Bad")
    # python-xlib prints X errors that reach its default handler: none did
    assert capfd.readouterr().err == ""


def test_without_composite_the_screen_under_the_window_is_read_and_said(
    xdisplay_plain: Any, warnings_from: Any
) -> None:
    make_window(xdisplay_plain, "Lower Call", 100, 50, 200, 120, BLUE)
    make_window(xdisplay_plain, "Upper Thing", 150, 80, 200, 120, GREEN)
    warnings = warnings_from("mesolive.pipeline.capture")
    statuses: list[tuple[ReadStatus, str]] = []
    slot: LatestSlot[Frame] = LatestSlot()
    thread = CaptureThread(
        WindowSource("Lower Call", fps=60),
        slot,
        on_status=lambda s, m: statuses.append((s, m)),
    )
    thread.start()
    try:
        frame = slot.take(5.0)
        assert frame is not None and frame.image.shape == (120, 200, 3)
        assert tuple(frame.image[0, 0]) == BLUE_BGR
        assert tuple(frame.image[100, 150]) == GREEN_BGR  # the covering window, as on screen
        note = thread.note
    finally:
        assert thread.stop()
    assert note == (
        "this X server has no Composite extension; capturing the screen under the window "
        "instead: whatever covers it is captured too, and the part off screen is cut"
    )
    assert statuses[0] == (ReadStatus.OK, f"capturing window:Lower Call at 60 fps ({note})")
    assert warnings == [statuses[0][1]]
