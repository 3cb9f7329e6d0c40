"""Screen capture with mss: ``screen:N`` and ``screen:N@x,y,w,h``."""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mesolive.errors import SourceError
from mesolive.sources.base import FrameSource
from mesolive.types import Frame, ReadStatus

log = logging.getLogger(__name__)

#: Frame rate a screen or window is grabbed at when the caller gives none.
SCREEN_FPS = 30.0


@dataclass(frozen=True)
class Region:
    """A rectangle in virtual-screen pixels (the coordinates mss uses)."""

    left: int
    top: int
    width: int
    height: int

    def as_monitor(self) -> dict[str, int]:
        return {"left": self.left, "top": self.top, "width": self.width, "height": self.height}

    def clip(self, bounds: Region) -> Region | None:
        """The part inside ``bounds``, or None where nothing is."""
        x1, y1 = max(self.left, bounds.left), max(self.top, bounds.top)
        x2 = min(self.left + self.width, bounds.left + bounds.width)
        y2 = min(self.top + self.height, bounds.top + bounds.height)
        if x2 <= x1 or y2 <= y1:
            return None
        return Region(x1, y1, x2 - x1, y2 - y1)


def display_problem() -> str | None:
    """Why screen capture cannot work here, or None where it may."""
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")) and not os.environ.get(
        "DISPLAY"
    ):
        if os.environ.get("WAYLAND_DISPLAY"):
            return (
                "this Wayland session has no X display (DISPLAY is not set); "
                "screen and window capture need X11 or XWayland"
            )
        return "no X display (DISPLAY is not set)"
    return None


def new_grabber() -> Any:
    """A new ``mss.MSS`` grabber, bound to the calling thread.

    Raises
    ------
    SourceError
        mss is not installed, or no display can be opened.
    """
    problem = display_problem()
    if problem:
        raise SourceError(f"screen capture unavailable: {problem}")
    try:
        import mss
    except ImportError as e:
        raise SourceError("screen capture needs the mss package (pip install mss)") from e
    try:
        # mss >= 10.2 has the class; the older factory function warns there.
        factory = getattr(mss, "MSS", None) or mss.mss
        return factory()
    except mss.ScreenShotError as e:
        raise SourceError(f"screen capture unavailable: {e}") from e


def monitor_regions(grabber: Any) -> list[Region]:
    """mss's monitors: index 0 is all screens together, 1… each screen."""
    return [Region(m["left"], m["top"], m["width"], m["height"]) for m in grabber.monitors]


_own_windows: tuple[Region, ...] = ()


def hide_own_windows(rects: tuple[Region, ...]) -> None:
    """The screen rectangles this process's windows cover, blacked out of every grab.

    Captured, the app's own window would show the capture again, boxes and
    all, and its faces would be found and judged a second time. The GUI
    thread sets them as its window moves; capture threads read them (a tuple
    replaced whole, so a reader sees the old or the new one, never half).
    """
    global _own_windows
    _own_windows = tuple(rects)


def grab_bgr(grabber: Any, region: Region) -> np.ndarray:
    """Grab ``region`` as (height, width, 3) uint8 BGR, C-contiguous, owned, with this
    process's own windows (:func:`hide_own_windows`) black."""
    import cv2

    shot = grabber.grab(region.as_monitor())
    bgra = np.asarray(shot)  # (height, width, 4) BGRA over mss's buffer
    image = cv2.cvtColor(bgra, cv2.COLOR_BGRA2BGR)  # a new array, independent of mss's buffer
    for own in _own_windows:
        part = own.clip(region)
        if part is not None:
            x, y = part.left - region.left, part.top - region.top
            image[y : y + part.height, x : x + part.width] = 0
    return image


class Throttle:
    """Spaces reads ``1 / fps`` apart while keeping each wait below the read timeout."""

    def __init__(self, fps: float) -> None:
        self.interval = 1.0 / fps
        self._due = 0.0

    def wait(self, timeout: float) -> bool:
        """Sleep until the next frame is due; False when that is more than ``timeout`` away."""
        now = time.monotonic()
        delay = self._due - now
        if delay > timeout:
            time.sleep(max(timeout, 0.0))
            return False
        if delay > 0:
            time.sleep(delay)
        now = time.monotonic()
        # A late grab does not make the next ones come faster.
        self._due = max(self._due + self.interval, now)
        return True


class ScreenSource(FrameSource):
    """``screen:N`` (all of screen N) or ``screen:N@x,y,w,h`` (a part of it).

    N numbers screens as mss does: 1 is the first screen, 0 all screens
    together. ``x, y`` are relative to screen N's top-left corner. The mss
    grabber is created in :meth:`open`, i.e. in the capture thread, because
    its handles are bound to the thread that made them.
    """

    is_live = True
    reads_screen = True
    noun = "screen"

    def __init__(
        self,
        monitor: int = 1,
        region: tuple[int, int, int, int] | None = None,
        *,
        fps: float | None = None,
        uri: str | None = None,
    ) -> None:
        self.monitor = monitor
        self.region = region
        self.fps = fps or SCREEN_FPS
        self.uri = uri or f"screen:{monitor}"
        self.grab_region: Region | None = None  # set by open(): the pixels read
        self._grabber: Any = None
        self._throttle = Throttle(self.fps)
        self._index = 0

    def open(self) -> None:
        self.close()
        grabber = new_grabber()
        try:
            self.grab_region = self._resolve(monitor_regions(grabber))
        except BaseException:
            grabber.close()
            raise
        self._grabber = grabber

    def _resolve(self, monitors: list[Region]) -> Region:
        n_screens = len(monitors) - 1
        if not 0 <= self.monitor < len(monitors):
            have = ", ".join(
                f"screen:{i} ({m.width}x{m.height})" for i, m in enumerate(monitors) if i > 0
            )
            raise SourceError(
                f"{self.uri}: no screen {self.monitor}; this display has {n_screens} "
                f"screen{'s' if n_screens != 1 else ''}: {have} (screen:0 = all together)"
            )
        mon = monitors[self.monitor]
        if self.region is None:
            return mon
        x, y, w, h = self.region
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > mon.width or y + h > mon.height:
            raise SourceError(
                f"{self.uri}: region {x},{y},{w},{h} does not fit in screen {self.monitor} "
                f"({mon.width}x{mon.height})"
            )
        return Region(mon.left + x, mon.top + y, w, h)

    def read(self, timeout: float) -> tuple[ReadStatus, Frame | None, str]:
        import mss

        if self._grabber is None or self.grab_region is None:
            return ReadStatus.ERROR, None, f"{self.uri}: not open"
        if not self._throttle.wait(timeout):
            return ReadStatus.TIMEOUT, None, ""
        try:
            image = grab_bgr(self._grabber, self.grab_region)
        except mss.ScreenShotError as e:
            return ReadStatus.ERROR, None, f"{self.uri}: screen grab failed ({e})"
        frame = Frame(self._index, image, time.monotonic(), self.uri)
        self._index += 1
        return ReadStatus.OK, frame, ""

    def close(self) -> None:
        if self._grabber is not None:
            try:
                self._grabber.close()
            finally:
                self._grabber = None
