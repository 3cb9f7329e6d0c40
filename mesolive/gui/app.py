"""``mesolive`` without a verb: the desktop app.

:func:`run` checks for a display *before* PySide6 is imported: without one
Qt would abort the process ("could not connect to display") instead of
raising, so a headless machine gets one line pointing at ``mesolive scan``
and exit code 2.

SIGINT (Ctrl+C in the terminal) and SIGTERM quit the app the way closing the
window does (capture and inference stop, settings are saved), then exit with
128 + the signal's number: 130 and 143, as a shell reports a process the
signal ended. See :func:`_install_signal_handlers` for why this needs a
wakeup socket.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mesolive.errors import MesoliveError, ModelError

log = logging.getLogger(__name__)

#: QT_QPA_PLATFORM values that need no display server.
HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "linuxfb", "eglfs")

#: Signals that quit the app through the window's normal close path.
QUIT_SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: Libraries Qt's xcb plugin loads, and the Debian package of each.
XCB_LIBS = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libX11-xcb.so.1": "libx11-xcb1",
}


NO_WINDOW = (
    ", so the desktop app cannot open a window; "
    "to analyse videos or streams without one use `mesolive scan INPUT`"
)


def _platform(env: Mapping[str, str]) -> str:
    return env.get("QT_QPA_PLATFORM", "").split(":", 1)[0].strip().lower()


def display_problem(
    env: Mapping[str, str] | None = None, platform: str | None = None
) -> str | None:
    """Why no window can be shown here, or None. Imports nothing from Qt."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if not platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return None
    if _platform(env) in HEADLESS_PLATFORMS:
        return None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return "no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"


def _uses_xcb(env: Mapping[str, str]) -> bool:
    """Qt will open its window through X11 (xcb) on Linux."""
    if not sys.platform.startswith("linux") or _platform(env) not in ("", "xcb"):
        return False
    return bool(env.get("DISPLAY")) and not (env.get("WAYLAND_DISPLAY") and not _platform(env))


def missing_xcb_libs(env: Mapping[str, str] | None = None) -> list[str]:
    """Debian packages of the X11 libraries Qt needs and cannot load (Linux, xcb only)."""
    env = os.environ if env is None else env
    if not _uses_xcb(env):
        return []
    missing = []
    for lib, pkg in XCB_LIBS.items():
        try:
            ctypes.CDLL(lib)
        except OSError:
            missing.append(pkg)
    return missing


def unreachable_display(env: Mapping[str, str] | None = None) -> str | None:
    """Why the X server ``DISPLAY`` names cannot be reached (xcb only), else None.

    Qt aborts the process when it cannot connect (with a hint about
    libxcb-cursor0 that misleads: a stale ``DISPLAY`` of an ended SSH
    session is the usual cause), so the connection is tried first with
    libxcb itself.
    """
    env = os.environ if env is None else env
    if not _uses_xcb(env):
        return None
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return None  # missing_xcb_libs names it
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = (ctypes.c_char_p, ctypes.c_void_p)
    xcb.xcb_connection_has_error.argtypes = (ctypes.c_void_p,)
    xcb.xcb_disconnect.argtypes = (ctypes.c_void_p,)
    conn = xcb.xcb_connect(env["DISPLAY"].encode(), None)
    failed = xcb.xcb_connection_has_error(conn)
    xcb.xcb_disconnect(conn)  # also frees a connection in an error state
    return f"cannot connect to the X display {env['DISPLAY']} (DISPLAY)" if failed else None


def unreachable_wayland(env: Mapping[str, str] | None = None) -> str | None:
    """Why the Wayland display ``WAYLAND_DISPLAY`` names cannot be reached, else None.

    Only where Qt would choose Wayland (Linux, ``QT_QPA_PLATFORM`` unset or
    ``wayland``). A compositor listens on a socket in ``XDG_RUNTIME_DIR``
    (or at an absolute ``WAYLAND_DISPLAY``); without it Qt aborted the
    process with eight lines ending in "Reinstalling the application may
    fix this problem".
    """
    env = os.environ if env is None else env
    name = env.get("WAYLAND_DISPLAY", "")
    if not sys.platform.startswith("linux") or not name or _platform(env) not in ("", "wayland"):
        return None
    runtime = env.get("XDG_RUNTIME_DIR", "")
    where = Path(name) if os.path.isabs(name) else Path(runtime) / name if runtime else None
    if where is not None and where.is_socket():
        return None
    return f"cannot connect to the Wayland display {name} (WAYLAND_DISPLAY)"


def _import_qt() -> None:
    problem = display_problem()
    if problem:
        raise MesoliveError(problem + NO_WINDOW)
    problem = unreachable_wayland()
    if problem and os.environ.get("DISPLAY") and not _platform(os.environ):
        log.warning("%s; using the X display %s instead", problem, os.environ["DISPLAY"])
        os.environ["QT_QPA_PLATFORM"] = "xcb"  # the X checks below then apply
    elif problem:
        raise MesoliveError(problem + NO_WINDOW)
    missing = missing_xcb_libs()
    if missing:
        raise MesoliveError(
            "Qt needs X11 libraries that are missing: apt-get install " + " ".join(missing)
        )
    problem = unreachable_display()
    if problem:
        raise MesoliveError(problem + NO_WINDOW)
    try:
        import pyqtgraph  # noqa: F401
        import PySide6.QtWidgets  # noqa: F401
    except ImportError as e:
        raise MesoliveError(
            f"the desktop app needs PySide6 and pyqtgraph: pip install 'mesolive[gui]' ({e})"
        ) from e


def _install_qt_logging() -> None:
    """Qt's own messages and uncaught exceptions in slots go to logging (friture)."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    qt_log = logging.getLogger("mesolive.qt")
    levels = {
        QtMsgType.QtDebugMsg: logging.DEBUG,
        QtMsgType.QtInfoMsg: logging.INFO,
        QtMsgType.QtWarningMsg: logging.WARNING,
        QtMsgType.QtCriticalMsg: logging.ERROR,
        QtMsgType.QtFatalMsg: logging.CRITICAL,
    }

    def handler(kind: Any, _context: Any, message: str) -> None:
        qt_log.log(levels.get(kind, logging.WARNING), "%s", message)

    qInstallMessageHandler(handler)

    def excepthook(exc_type: Any, exc: BaseException, tb: Any) -> None:
        # A bug in a slot must not take the app down; it is logged with its traceback.
        log.error("unexpected error in the GUI", exc_info=(exc_type, exc, tb))

    sys.excepthook = excepthook


def _noted(_signum: int, _frame: Any) -> None:
    """The Python-level handler: does nothing, the wakeup socket carries the signal.

    It must be a Python function (not SIG_IGN or SIG_DFL): only then does
    CPython's C handler write the signal number to the wakeup fd.
    """


def _exit_at_once(signum: int, _frame: Any) -> None:
    """A quit signal after the app quit by one: exit now, with 128 + its number.

    Threads are stopped and settings saved by then, but the interpreter's
    teardown (ONNX Runtime, Qt) takes a few hundred milliseconds more, and
    Python's default handler would raise KeyboardInterrupt in the middle of it.
    """
    os._exit(128 + signum)


def _install_signal_handlers(on_signal: Callable[[int], None]) -> Callable[[], None]:
    """Have the Qt event loop call ``on_signal(signum)`` for SIGINT and SIGTERM.

    Returns ``restore``, to call after the window shut down: it passes on a
    signal that came since the loop ended, then puts the previous handlers
    back or, once a signal was seen (the app is quitting by it), has any
    further one end the process at once (:func:`_exit_at_once`).

    Python runs a signal handler only when the interpreter gets control. While
    Qt's loop waits in C++ it never does, and Python's default SIGINT handler
    later raises KeyboardInterrupt inside whatever slot runs next: a
    traceback, the app running on, and a second Ctrl+C crashing it. So the
    Python handler does nothing; CPython's C handler writes the signal number
    to a socket (``signal.set_wakeup_fd``) and a QSocketNotifier on the other
    end wakes the loop, which reads the number and calls ``on_signal``.
    """
    from PySide6.QtCore import QSocketNotifier

    rsock, wsock = socket.socketpair()
    rsock.setblocking(False)
    wsock.setblocking(False)  # set_wakeup_fd requires it: the C handler must never block
    old_fd = signal.set_wakeup_fd(wsock.fileno(), warn_on_full_buffer=False)
    old = {sig: signal.signal(sig, _noted) for sig in QUIT_SIGNALS}
    notifier = QSocketNotifier(rsock.fileno(), QSocketNotifier.Type.Read)
    seen = False

    def drain() -> None:
        nonlocal seen
        try:
            data = rsock.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        for signum in data:
            seen = True
            on_signal(signum)

    notifier.activated.connect(drain)

    def restore() -> None:
        notifier.setEnabled(False)
        drain()  # a signal that came after the loop ended, while the threads stopped
        signal.set_wakeup_fd(old_fd)
        for sig, handler in old.items():
            if seen:
                handler = _exit_at_once
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        rsock.close()
        wsock.close()

    return restore


def initial_source(args: Any) -> str | None:
    """``--source``, else the first camera found; None means "open the source picker"."""
    if getattr(args, "source", None):
        return str(args.source)
    from mesolive.sources.registry import list_sources

    cams = [s for s in list_sources() if s.kind == "webcam"]
    return cams[0].uri if cams else None


def _check_models(names: Sequence[str]) -> None:
    """``--models`` names models that exist, or one line (the app would otherwise keep a
    typo among its settings and fail at every later start)."""
    from mesolive.models.registry import get_spec

    for name in names:
        try:
            get_spec(name)
        except MesoliveError as e:
            raise ModelError(f"--models: {e}") from e


def run(args: Any) -> int:
    """Open the main window and run until it is closed. Returns the exit code."""
    _check_models(getattr(args, "models", None) or ())
    _import_qt()
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from mesolive.gui.hooks import TestingHooks
    from mesolive.gui.main_window import MainWindow
    from mesolive.gui.settings import open_settings

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "mesolive"])
    app.setApplicationName("mesolive")
    app.setOrganizationName("mesolive")
    _install_qt_logging()

    window = MainWindow(args, open_settings())
    hooks = TestingHooks(window)
    quit_code: list[int] = []  # 128 + the first quit signal's number

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if quit_code:  # a second Ctrl+C while the threads stop: they are bounded by timeouts
            log.info("%s again: already quitting", name)
            return
        quit_code.append(128 + signum)
        log.info("%s: quitting", name)
        window.close_now()  # the normal path: closeEvent stops the threads and saves settings
        app.quit()  # also ends a modal dialog's loop

    restore = _install_signal_handlers(on_signal)
    try:
        window.show()
        first = initial_source(args)
        if first:
            QTimer.singleShot(0, lambda: window.start_source(first))
        else:  # no camera here: start on the picker (screens, windows, files), not on an error
            QTimer.singleShot(0, window.choose_source)
        code = app.exec()
        if not window.shutdown():
            log.warning("some threads did not stop in time")
        hooks.write_stats()
    finally:
        restore()  # only now: a signal during shutdown must not raise KeyboardInterrupt in it
    return quit_code[0] if quit_code else int(code)
