"""Network streams (``rtsp://``, ``http(s)://``, …) through OpenCV's FFmpeg backend."""

from __future__ import annotations

import time

from mesolive.errors import SourceError
from mesolive.redact import redact
from mesolive.sources._cv import CaptureReader, quiet_opencv
from mesolive.sources._netprobe import probeable, why_unopened

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
    noun = "stream"

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
        t0 = time.monotonic()
        cap = cv2.VideoCapture(self.uri, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            why = self._why_unopened(time.monotonic() - t0)
            raise SourceError(f"{redact(self.uri)}: cannot open the stream{why}")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if 0 < fps < 1000 else None
        self._cap = cap

    def _why_unopened(self, waited: float) -> str:
        """Why the open that took ``waited`` s failed, as far as can be told: ``": why"``,
        or the possible causes in brackets.

        An open that ran out its time got no answer. One that failed sooner
        is asked about once more (:mod:`~mesolive.sources._netprobe`), within
        what is left of ``open_timeout``, so that opening takes about that long
        at most (half a second more where a host-name lookup is left behind;
        the capture thread's watchdog, well above it, never fires).
        """
        generic = (
            f" (server unreachable, no answer within {self.open_timeout:g} s, "
            "or not a video stream)"
        )
        if not probeable(self.uri):  # udp, srt: nothing to ask
            return generic
        if waited > 0.8 * self.open_timeout:
            return f": no answer within {self.open_timeout:g} s"
        why = why_unopened(self.uri, self.open_timeout, waited=waited)
        return f": {why}" if why else generic
