"""OpenCV helpers shared by the webcam, stream and video-file sources."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from mesolive.sources.base import FrameSource
from mesolive.types import Frame, ReadStatus

_quieted = False


def quiet_opencv() -> None:
    """Silence FFmpeg's and OpenCV's own stderr chatter; mesolive reports errors itself.

    A truncated file makes FFmpeg print "moov atom not found" and OpenCV a
    warning before :class:`SourceError` says the same in one line. A user who
    sets ``OPENCV_FFMPEG_LOGLEVEL`` or ``OPENCV_LOG_LEVEL`` keeps their choice.
    The FFmpeg level is read when the backend is first used, so this must run
    before the first ``cv2.VideoCapture``.
    """
    global _quieted
    if _quieted:
        return
    _quieted = True
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    if "OPENCV_LOG_LEVEL" not in os.environ:
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


@contextmanager
def silent_opencv() -> Iterator[None]:
    """OpenCV logs nothing inside the block: for calls whose failure is expected and
    reported by mesolive in its own words (a video codec probe prints "Could not open
    codec" for each encoder it tries). A user's ``OPENCV_LOG_LEVEL`` is kept."""
    import cv2

    if "OPENCV_LOG_LEVEL" in os.environ:
        yield
        return
    old = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(old)


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Any decoded image as (H, W, 3) uint8 BGR, C-contiguous.

    Parameters
    ----------
    image
        (H, W) gray, (H, W, 1), (H, W, 3) BGR or (H, W, 4) BGRA, uint8 or uint16.
    """
    import cv2

    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


class CaptureReader(FrameSource):
    """``read``/``close`` for a live source backed by one ``cv2.VideoCapture``.

    Subclasses open ``self._cap`` in ``open()``; ``_index`` keeps counting across
    reconnects, so frame numbers never repeat (the frames a drop cost are in
    the capture thread's :class:`~mesolive.types.Outage` records, not in
    gaps). ``lost_message`` says what a failed read means for that kind of source.
    """

    lost_message = "stopped delivering frames"
    _cap: Any = None
    _index = 0

    @property
    def display_name(self) -> str:
        return self.uri

    def read(self, timeout: float) -> tuple[ReadStatus, Frame | None, str]:
        if self._cap is None:
            return ReadStatus.ERROR, None, f"{self.display_name}: not open"
        ok, image = self._cap.read()
        if not ok or image is None:
            return ReadStatus.ERROR, None, f"{self.display_name}: {self.lost_message}"
        frame = Frame(self._index, as_bgr(image), time.monotonic(), self.uri)
        self._index += 1
        return ReadStatus.OK, frame, ""

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
