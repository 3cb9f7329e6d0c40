"""``window:TITLE``: the screen region of a window, followed as it moves (X11)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from mesolive.errors import SourceError
from mesolive.sources.base import FrameSource
from mesolive.sources.screen import (
    SCREEN_FPS,
    Region,
    Throttle,
    display_problem,
    grab_bgr,
    monitor_regions,
    new_grabber,
)
from mesolive.types import Frame, ReadStatus

log = logging.getLogger(__name__)

UNSUPPORTED = (
    "window capture is implemented for X11 only (Linux and BSD desktops with an X or "
    "XWayland display); on Windows and macOS use screen:N@x,y,w,h with the window's position"
)


def window_capture_problem() -> str | None:
    """Why ``window:`` cannot work on this machine, or None where it may."""
    if sys.platform in ("win32", "cygwin", "darwin"):
        return UNSUPPORTED
    return display_problem()


class WindowSource(FrameSource):
    """Grabs the screen pixels under a window whose title contains ``title``.

    What is captured is the screen, not the window's own buffer: whatever
    covers the window is captured too, and the parts off screen are cut.
    The window's position is re-read every ``refresh`` seconds, so a moved
    or resized window is followed (frame sizes then change). A closed,
    minimised or off-screen window is an ``ERROR``; the capture thread then
    retries, which finds the window again by title when it comes back.
    """

    is_live = True

    def __init__(
        self,
        title: str,
        *,
        fps: float | None = None,
        refresh: float = 0.5,
        uri: str | None = None,
    ) -> None:
        self.title = title
        self.uri = uri or f"window:{title}"
        self.fps = fps or SCREEN_FPS
        self.refresh = refresh
        self.window_title = ""  # the full title of the window found by open()
        self.grab_region: Region | None = None
        self._display: Any = None
        self._grabber: Any = None
        self._window: Any = None
        self._bounds: Region | None = None
        self._next_refresh = 0.0
        self._throttle = Throttle(self.fps)
        self._index = 0

    def open(self) -> None:
        from mesolive.sources import _x11

        self.close()
        problem = window_capture_problem()
        if problem:
            raise SourceError(f"{self.uri}: {problem}")
        try:
            self._display = _x11.connect()
            found = _x11.find_window(self._display, self.title)
            self._window = self._display.create_resource_object("window", found.wid)
            self.window_title = found.title
            self._grabber = new_grabber()
            self._bounds = monitor_regions(self._grabber)[0]
        except BaseException:
            self.close()
            raise
        self._next_refresh = 0.0
        log.info("%s: capturing window %r", self.uri, found.title)

    def _update_region(self) -> str:
        """Re-read the window's position; returns an error message, or ''."""
        from Xlib import error

        from mesolive.sources import _x11

        try:
            viewable, region = _x11.window_region(self._display, self._window)
        except (error.XError, error.ConnectionClosedError) as e:
            return f"{self.uri}: window {self.window_title!r} was closed ({type(e).__name__})"
        if not viewable:
            return f"{self.uri}: window {self.window_title!r} is minimised or hidden"
        clipped = region.clip(self._bounds) if self._bounds is not None else None
        if clipped is None:
            return f"{self.uri}: window {self.window_title!r} is off screen"
        self.grab_region = clipped
        return ""

    def read(self, timeout: float) -> tuple[ReadStatus, Frame | None, str]:
        import mss

        if self._grabber is None:
            return ReadStatus.ERROR, None, f"{self.uri}: not open"
        if not self._throttle.wait(timeout):
            return ReadStatus.TIMEOUT, None, ""
        now = time.monotonic()
        if now >= self._next_refresh:
            self._next_refresh = now + self.refresh
            problem = self._update_region()
            if problem:
                return ReadStatus.ERROR, None, problem
        region = self.grab_region
        if region is None:
            return ReadStatus.ERROR, None, f"{self.uri}: window region unknown"
        try:
            image = grab_bgr(self._grabber, region)
        except mss.ScreenShotError as e:
            return ReadStatus.ERROR, None, f"{self.uri}: screen grab failed ({e})"
        frame = Frame(self._index, image, time.monotonic(), self.uri)
        self._index += 1
        return ReadStatus.OK, frame, ""

    def close(self) -> None:
        grabber, display = self._grabber, self._display
        self._grabber = self._display = self._window = None
        try:
            if grabber is not None:
                grabber.close()
        finally:
            if display is not None:
                from Xlib import error

                try:
                    display.close()
                except (error.ConnectionClosedError, OSError):
                    pass  # the X server went away first
