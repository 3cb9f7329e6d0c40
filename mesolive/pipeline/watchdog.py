"""A watchdog for steps that may never return (an inference stuck in a driver).

No Qt here: the GUI's inference thread and ``mesolive scan`` both use it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType

log = logging.getLogger(__name__)

Notify = Callable[[str], None]


class StepWatchdog:
    """Reports, from its own thread, a step that has not returned within ``timeout`` s.

    A Python thread cannot be killed, so a stalled step is only reported: one
    WARNING (and ``on_stall(message)``) when it passes ``timeout``, and one
    (``on_resume(message)``) when it finally returns; the worker then goes
    on. Steps are announced with :meth:`step` from the worker's thread, one
    at a time; nothing is signalled per step, the watchdog thread wakes at
    the current step's deadline or every ``timeout / 2`` s when idle.

    Callbacks run in the watchdog's thread (``on_stall``) or the worker's
    (``on_resume``); exceptions they raise are logged and ignored.

    Example::

        with StepWatchdog("inference", 10.0) as watchdog:
            for frame in frames:
                with watchdog.step(f"frame {frame.index}"):
                    pipeline.process(frame)
    """

    def __init__(
        self,
        name: str,
        timeout: float,
        *,
        on_stall: Notify | None = None,
        on_resume: Notify | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"watchdog timeout must be positive, got {timeout}")
        self.name = name
        self.timeout = float(timeout)
        self.on_stall = on_stall
        self.on_resume = on_resume
        self._cond = threading.Condition()
        self._step: tuple[str, float] | None = None  # (what, monotonic start)
        self._reported = False  # the current step was reported as stalled
        self._stopping = False
        self._stalls = 0
        self._thread: threading.Thread | None = None

    @property
    def stalls(self) -> int:
        """Steps reported as stalled so far."""
        return self._stalls

    def start(self) -> StepWatchdog:
        self._thread = threading.Thread(
            target=self._watch, name=f"mesolive-watchdog-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> bool:
        """End the watchdog's thread; True when it has ended."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> StepWatchdog:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        """Watch the block as one step; ``what`` names it in messages ("frame 12")."""
        with self._cond:
            self._step = (what, time.monotonic())
            self._reported = False
        try:
            yield
        finally:
            with self._cond:
                t0 = self._step[1] if self._step else time.monotonic()
                reported, self._step, self._reported = self._reported, None, False
            if reported:
                message = f"{self.name}: {what} returned after {time.monotonic() - t0:.1f} s"
                log.warning("%s", message)
                _notify(self.on_resume, message)

    def _watch(self) -> None:
        while True:
            with self._cond:
                message = self._wait_for_stall()
            if message is None:
                return
            log.warning("%s", message)
            _notify(self.on_stall, message)

    def _wait_for_stall(self) -> str | None:
        """Block (holding the condition) until a step passes its deadline; None when stopped."""
        while not self._stopping:
            if self._step is None or self._reported:
                self._cond.wait(self.timeout / 2)
                continue
            what, t0 = self._step
            late = time.monotonic() - t0
            if late < self.timeout:
                self._cond.wait(self.timeout - late)
                continue
            self._reported = True
            self._stalls += 1
            return f"{self.name}: {what} has not returned for {late:.1f} s"
        return None


def _notify(callback: Notify | None, message: str) -> None:
    if callback is None:
        return
    try:
        callback(message)
    except Exception:
        log.exception("watchdog callback failed")
