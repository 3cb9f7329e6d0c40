"""SIGTERM and SIGHUP end a verb the way Ctrl+C does.

``timeout``, systemd, ``docker stop`` and a closed terminal send these; by
default they killed the process where it stood: a scan lost its whole report
and left its half-written CSV behind as a hidden ``.part`` file, and a
training run said nothing of the epoch it had reached. Raised as
:class:`KeyboardInterrupt` in the main thread, they take Ctrl+C's path
instead (a partial report, the checkpoint named), and the exit status says
which signal ended the run (128 + its number: 130 Ctrl+C, 143 SIGTERM, 129
SIGHUP). A second one ends the process at once, as a second SIGTERM should.
The app has its own handlers (:data:`mesolive.gui.app.QUIT_SIGNALS`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""The signals taken as Ctrl+C (the POSIX ones; Windows has neither)."""

_received: list[int] = []  # the first is the one that stopped the run


def _stop(signum: int, _frame: FrameType | None) -> None:
    _received.append(signum)
    signal.signal(signum, signal.SIG_DFL)  # a second one is not caught
    raise KeyboardInterrupt


def stop_like_ctrl_c() -> None:
    """Take :data:`STOP_SIGNALS` as Ctrl+C from here on (again after a library that
    replaced the handlers: Ray's core worker does). Outside the main thread: nothing."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in STOP_SIGNALS:
        if sig not in _received:
            signal.signal(sig, _stop)


def check() -> None:
    """Raise KeyboardInterrupt if a stop signal came and the run still goes on.

    Python drops an exception raised inside a finaliser (a ``__del__``, a
    weakref callback: "Exception ignored in …" on stderr), and the handler runs
    wherever the main thread is when the signal lands: a SIGTERM caught there is
    lost, and a training run would go on to its last epoch (a second SIGTERM kills
    it unsaved). Loops call this once per step (a batch, a frame). Outside the
    main thread: nothing.
    """
    if _received and threading.current_thread() is threading.main_thread():
        raise KeyboardInterrupt


def exit_status(default: int = 130) -> int:
    """128 + the signal that stopped the run, else ``default`` (Ctrl+C's 130)."""
    return 128 + _received[0] if _received else default


def interrupted_import(error: BaseException) -> None:
    """Raise KeyboardInterrupt when ``error`` came of Ctrl+C or a stop signal.

    Pressed while a compiled module initialises (onnxruntime, OpenVINO, TensorRT, torch:
    pybind11 modules), Ctrl+C reaches the importer as ``ImportError('initialization
    failed')`` caused by the KeyboardInterrupt. Code that takes an ImportError for "not
    installed" calls this first, else the key press is lost and the run goes on to its end.
    """
    if by_interrupt(error):
        raise KeyboardInterrupt from error


def by_interrupt(error: BaseException) -> bool:
    """Whether ``error`` was caused by a KeyboardInterrupt (:func:`interrupted_import`)."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Ctrl+C and :data:`STOP_SIGNALS` wait for the block to end, then interrupt.

    For a block that must not be cut half-way: a local Ray cluster interrupted
    while it starts leaves agents running that ``ray.shutdown`` does not know
    of (and once in a while the process crashed). Outside the main thread,
    nothing is held.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: pressed.append(signum))
        for sig in (signal.SIGINT, *STOP_SIGNALS)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if pressed:
        if pressed[0] != signal.SIGINT:
            _received.append(pressed[0])
        raise KeyboardInterrupt


__all__ = [
    "STOP_SIGNALS",
    "by_interrupt",
    "check",
    "exit_status",
    "held",
    "interrupted_import",
    "stop_like_ctrl_c",
]
