"""Network streams (``rtsp://``, ``http(s)://``, …) through OpenCV's FFmpeg backend."""

from __future__ import annotations

import time

from mesolive.errors import SourceError
from mesolive.sources._cv import as_bgr, quiet_opencv, redact
from mesolive.sources.base import FrameSource
from mesolive.types import Frame, ReadStatus

#: URI schemes handed to FFmpeg as network streams.
STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt"})


class StreamSource(FrameSource):
    """A live network stream.

    FFmpeg's own interrupt timeouts bound every blocking call: opening gives
    up after ``open_timeout`` seconds and a read that gets no data for
    ``read_timeout`` seconds fails, so a stalled server never hangs the
    capture thread for longer than that. A failed read is ``ERROR`` (the
    stream dropped), which the capture thread answers by reconnecting.

    ``read(timeout)`` blocks until FFmpeg delivers the next frame (at most
    ``read_timeout``); it does not honour the shorter ``timeout``.
    """

    is_live = True

    def __init__(self, url: str, *, open_timeout: float = 10.0, read_timeout: float = 5.0) -> None:
        self.uri = url
        self.fps = None
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self._cap = None
        self._index = 0  # keeps counting across reconnects: gaps are lost frames

    def open(self) -> None:
        import cv2

        self.close()
        quiet_opencv()
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.open_timeout * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self.read_timeout * 1000),
        ]
        cap = cv2.VideoCapture(self.uri, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"{redact(self.uri)}: cannot open the stream (server unreachable, "
                f"no answer within {self.open_timeout:g} s, or not a video stream)"
            )
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if 0 < fps < 1000 else None
        self._cap = cap

    def read(self, timeout: float) -> tuple[ReadStatus, Frame | None, str]:
        if self._cap is None:
            return ReadStatus.ERROR, None, f"{redact(self.uri)}: not open"
        ok, image = self._cap.read()
        if not ok or image is None:
            return ReadStatus.ERROR, None, f"{redact(self.uri)}: stream dropped"
        frame = Frame(self._index, as_bgr(image), time.monotonic(), self.uri)
        self._index += 1
        return ReadStatus.OK, frame, ""

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
