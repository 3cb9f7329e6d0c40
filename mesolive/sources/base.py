"""The contract every frame source keeps."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType

from mesolive.types import Frame, ReadStatus


class FrameSource(ABC):
    """A source of BGR frames, opened and read in one thread (the capture thread).

    Some handles (mss grabbers, X11 connections) are bound to the thread that
    created them, so nothing is allocated before :meth:`open`, and ``open``,
    ``read`` and ``close`` are called from the same thread. An unopened
    source holds settings only and can be deep-copied: the capture thread's
    watchdog opens such a copy when a call on the original never returns.

    Attributes
    ----------
    uri
        The URI the source was opened from.
    is_live
        True for cameras, screens and streams: frames that are not taken in
        time are dropped, and a failure is retried with backoff. False for
        files, folders and ``test:`` when not paced.
    fps
        Nominal frame rate where known (files, cameras), else None.
    note
        Set by :meth:`open` where the source reads something other than the
        user may expect (``window:`` falling back to the screen under the
        window), one line; '' otherwise. The capture thread logs it as a
        warning and puts it in its "capturing …" status.
    reads_screen
        The frames are the screen's pixels (``screen:``; ``window:`` read from
        the screen under the window), once open: a window laid over the region
        read, such as the app's overlay, is in them.
    noun
        What the source is, in a word, for messages about the source as a
        whole: a live source that fails is logged as "``URI: window lost,
        reconnecting… (why)``". Each kind of source names itself here.
    """

    uri: str = ""
    is_live: bool = False
    fps: float | None = None
    note: str = ""
    reads_screen: bool = False
    noun: str = "source"

    def check(self) -> None:  # noqa: B027 - optional hook
        """What can be told at once, without a device or a decoder (a file's existence).

        Cheap enough for any thread; :meth:`open` checks it again. Raises
        :class:`SourceError`.
        """

    @abstractmethod
    def open(self) -> None:
        """Acquire the device, file or grabber. Raises :class:`SourceError`."""

    @abstractmethod
    def read(self, timeout: float) -> tuple[ReadStatus, Frame | None, str]:
        """Wait at most ``timeout`` seconds for the next frame.

        Returns ``(status, frame, message)``: ``frame`` is set only with
        ``ReadStatus.OK``; ``message`` explains ``ERROR`` (else empty).

        A source whose driver cannot honour ``timeout`` per call (OpenCV's
        blocking reads) bounds the call by a timeout of its own (a stream's
        ``read_timeout``, a Linux camera's select timeout) and says so. A call
        that still never returns is left behind by the capture thread's
        watchdog (see :class:`~mesolive.pipeline.capture.CaptureThread`).
        """

    @abstractmethod
    def close(self) -> None:
        """Release everything. Idempotent."""

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
