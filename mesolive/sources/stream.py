"""Network streams (``rtsp://``, ``http(s)://``, …) through OpenCV's FFmpeg backend."""

from __future__ import annotations

from mesolive.errors import SourceError
from mesolive.redact import redact
from mesolive.sources._cv import CaptureReader, quiet_opencv

#: URI schemes handed to FFmpeg as network streams.
STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt"})


class StreamSource(CaptureReader):
    """A live network stream.

    FFmpeg's own interrupt timeouts bound every blocking call: opening gives
    up after ``open_timeout`` seconds and a read that gets no data for
    ``read_timeout`` seconds fails, so a stalled server never hangs the
    capture thread for longer than that. A failed read is ``ERROR`` (the
    stream dropped), which the capture thread answers by reconnecting.

    ``read(timeout)`` blocks until FFmpeg delivers the next frame (at most
    ``read_timeout``); it does not honour the shorter ``timeout``. The one
    wait FFmpeg cannot interrupt, a host-name lookup, is left to the capture
    thread's watchdog.
    """

    lost_message = "stream dropped"

    @property
    def display_name(self) -> str:
        return redact(self.uri)  # never print a password

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
