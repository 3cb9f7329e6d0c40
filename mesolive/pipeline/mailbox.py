"""A one-item mailbox where the newest item wins."""

from __future__ import annotations

import queue
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


def put_unless_stopped(items: queue.Queue[T], item: T, stop: threading.Event) -> bool:
    """Put ``item`` into a bounded queue, waking every 0.1 s to see whether ``stop`` is set.

    For a producer thread whose consumer may give up: returns False (the item
    not queued) once ``stop`` is set, instead of blocking on a full queue forever.
    """
    while not stop.is_set():
        try:
            items.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class LatestSlot(Generic[T]):
    """Holds at most one item between a producer and a consumer thread.

    ``put`` overwrites an item nobody took (and counts it in :attr:`drops`),
    so a slow consumer always gets the newest frame and latency stays bounded
    by one item. After :meth:`close`, a pending item can still be taken once;
    then ``take`` returns None at once, and ``put`` is ignored. ``None`` is
    not a valid item (``take`` uses it to mean "nothing").
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._full = False
        self._closed = False
        self._drops = 0

    def put(self, item: T) -> bool:
        """Store ``item``, replacing (and counting as dropped) one not yet taken.

        True when it replaced one.
        """
        with self._cond:
            if self._closed:
                return False
            dropped = self._full
            self._drops += dropped
            self._item = item
            self._full = True
            self._cond.notify()
            return dropped

    def take(self, timeout: float | None = None) -> T | None:
        """The pending item, waiting up to ``timeout`` seconds (None: until one comes).

        Returns None on timeout, and at once when the slot is closed and empty.
        """
        with self._cond:
            if not self._full and not self._closed:
                self._cond.wait_for(lambda: self._full or self._closed, timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """Refuse further items and wake every waiting ``take``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def drops(self) -> int:
        """Items overwritten before anyone took them."""
        return self._drops
