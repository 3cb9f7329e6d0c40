"""Decode ahead: a file's next frames are read while the current one is analysed.

A scan must see every frame of a file, so it cannot use the capture thread's
latest-frame slot (which drops); reading in the analysing thread, though,
leaves the other core idle while a 720p frame decodes (about a fifth of the
time per frame here). :class:`ReadAhead` runs the source's ``open``/``read``/
``close`` in a thread of its own and hands frames over through a bounded
queue: the reader runs at most :attr:`ReadAhead.depth` frames ahead, and no
frame is dropped.
"""

from __future__ import annotations

import queue
import threading
from types import TracebackType

from mesolive.pipeline.mailbox import put_unless_stopped
from mesolive.sources.base import FrameSource
from mesolive.types import Frame, ReadStatus

_Item = tuple[ReadStatus, Frame | None, str] | BaseException


class ReadAhead:
    """Reads a non-live ``source`` in its own thread, ``depth`` frames ahead.

    Use it where the source itself would be used: :meth:`open` starts the
    thread and returns once the source is open (raising what ``open``
    raised), :meth:`read` returns the source's ``(status, frame, message)``
    in order, :meth:`close` stops the thread and closes the source in it.
    An exception from the source's ``read`` is raised by :meth:`read` in
    order, after the frames read before it.
    """

    def __init__(self, source: FrameSource, depth: int = 4) -> None:
        if source.is_live:
            raise ValueError(f"{source.uri}: a live source drops frames; use CaptureThread")
        self.source = source
        self.depth = depth
        self._items: queue.Queue[_Item] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mesolive-readahead", daemon=True)

    def open(self) -> None:
        self._thread.start()
        try:
            self._opened.wait()
        except BaseException:
            # Ctrl+C while the source opens: no ``with`` block's exit will stop the thread,
            # and a thread left inside a decoder's C++ when Python exits aborts the process.
            self.close()
            raise
        if self._open_error is not None:
            self._thread.join()
            raise self._open_error

    def read(self, timeout: float) -> tuple[ReadStatus, Frame | None, str]:
        try:
            item = self._items.get(timeout=timeout)
        except queue.Empty:
            return ReadStatus.TIMEOUT, None, ""
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self, timeout: float = 5.0) -> None:
        """Stop reading and wait (at most ``timeout`` s) for the source to be closed."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __enter__(self) -> ReadAhead:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the reading thread ------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.source.open()
        except BaseException as e:  # noqa: BLE001 (raised again by open() in the caller's thread)
            self._open_error = e
            self.source.close()
            self._opened.set()
            return
        self._opened.set()
        try:
            while not self._stop.is_set():
                try:
                    item: _Item = self.source.read(1.0)
                except Exception as e:  # noqa: BLE001 (read() raises it, in order)
                    item = e
                if not put_unless_stopped(self._items, item, self._stop) or isinstance(
                    item, BaseException
                ):
                    return
                if item[0] in (ReadStatus.END, ReadStatus.ERROR):
                    return
        finally:
            self.source.close()
