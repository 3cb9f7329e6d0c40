"""``window:TITLE``: a window's own pixels (X11 Composite), or the screen under it."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import numpy as np

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

#: Why a window is read from the screen, after the reason Composite cannot be used.
FALLBACK = (
    "capturing the screen under the window instead: whatever covers it is captured too, "
    "and the part off screen is cut"
)

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
    """Captures the window whose title contains ``title``.

    Where the X server has the Composite extension (Xorg and Xvfb have it),
    the window's own pixels are read (:mod:`mesolive.sources._xcomposite`):
    windows covering it are not captured, nor is mesolive's overlay, and the
    whole window is read even where part of it is off screen. Elsewhere the
    screen pixels under it are grabbed with mss, and :attr:`note` says so.

    The window's position is re-read every ``refresh`` seconds (the screen
    region to grab, and :attr:`grab_region`); frame sizes change with the
    window's. A closed or minimised window (or, read from the screen, one
    off screen) is an ``ERROR``; the capture thread then retries, which
    finds the window again by title when it comes back.
    """

    is_live = True
    noun = "window"

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
        #: Where the frame's pixels are, in root-window pixels: the whole window when
        #: its own pixels are read, the part on screen when the screen is grabbed.
        self.grab_region: Region | None = None
        self._display: Any = None
        self._reader: Any = None  # a CompositeReader, or None: the screen is grabbed
        self._grabber: Any = None
        self._window: Any = None
        self._bounds: Region | None = None
        self._next_refresh = 0.0
        self._throttle = Throttle(self.fps)
        self._index = 0

    def open(self) -> None:
        from Xlib import error

        from mesolive.sources import _x11, _xcomposite

        self.close()
        problem = window_capture_problem()
        if problem:
            raise SourceError(f"{self.uri}: {problem}")
        try:
            self._display = _x11.connect()
            found = _x11.find_window(self._display, self.title)
            self._window = self._display.create_resource_object("window", found.wid)
            self.window_title = found.title
            try:
                why = _xcomposite.composite_problem(self._display, self._window)
                if why is None:
                    self._reader = _xcomposite.CompositeReader(self._display, self._window)
            except error.XError as e:  # closed while we looked
                raise SourceError(self._closed(e)) from e
            self.reads_screen = self._reader is None
            if self._reader is None:
                self.note = f"{why}; {FALLBACK}"
                self._grabber = new_grabber()
                self._bounds = monitor_regions(self._grabber)[0]
            else:
                self.note = ""
        except BaseException:
            self.close()
            raise
        self._next_refresh = 0.0
        how = "its own pixels" if self._reader is not None else "the screen under it"
        log.info("%s: capturing window %r (%s)", self.uri, found.title, how)

    def _closed(self, e: Exception) -> str:
        return f"{self.uri}: window {self.window_title!r} was closed ({type(e).__name__})"

    def _update_region(self) -> str:
        """Re-read the window's position; returns an error message, or ''."""
        from Xlib import error

        from mesolive.sources import _x11

        try:
            viewable, region = _x11.window_region(self._display, self._window)
        except (error.XError, error.ConnectionClosedError) as e:
            return self._closed(e)
        if not viewable:
            return f"{self.uri}: window {self.window_title!r} is minimised or hidden"
        if self._reader is not None:
            self.grab_region = region
            return ""
        clipped = region.clip(self._bounds) if self._bounds is not None else None
        if clipped is None:
            return f"{self.uri}: window {self.window_title!r} is off screen"
        self.grab_region = clipped
        return ""

    def read(self, timeout: float) -> tuple[ReadStatus, Frame | None, str]:
        if self._reader is None and self._grabber is None:
            return ReadStatus.ERROR, None, f"{self.uri}: not open"
        if not self._throttle.wait(timeout):
            return ReadStatus.TIMEOUT, None, ""
        now = time.monotonic()
        if now >= self._next_refresh:
            self._next_refresh = now + self.refresh
            problem = self._update_region()
            if problem:
                return ReadStatus.ERROR, None, problem
        image, problem = self._grab_own() if self._reader is not None else self._grab_screen()
        if image is None:
            return ReadStatus.ERROR, None, problem
        frame = Frame(self._index, image, time.monotonic(), self.uri)
        self._index += 1
        return ReadStatus.OK, frame, ""

    def _grab_own(self) -> tuple[np.ndarray | None, str]:
        from Xlib import error

        try:
            return self._reader.grab(), ""
        except (error.XError, error.ConnectionClosedError) as e:
            # unmapped or closed since the last refresh: say which
            self._next_refresh = 0.0
            problem = self._update_region()
            unread = f"{self.uri}: window {self.window_title!r} could not be read"
            return None, problem or f"{unread} ({type(e).__name__})"

    def _grab_screen(self) -> tuple[np.ndarray | None, str]:
        import mss

        region = self.grab_region
        if region is None:
            return None, f"{self.uri}: window region unknown"
        try:
            return grab_bgr(self._grabber, region), ""
        except mss.ScreenShotError as e:
            return None, f"{self.uri}: screen grab failed ({e})"

    def close(self) -> None:
        grabber, display = self._grabber, self._display
        self._grabber = self._display = self._window = self._reader = None
        try:
            if grabber is not None:
                grabber.close()
        finally:
            if display is not None:
                from Xlib import error

                try:
                    display.close()  # also ends the window's redirection (see _xcomposite)
                except (error.ConnectionClosedError, OSError):
                    pass  # the X server went away first
