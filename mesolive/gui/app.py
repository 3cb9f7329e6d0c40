"""``mesolive`` without a verb: the desktop app.

:func:`run` checks for a display *before* PySide6 is imported: without one
Qt would abort the process ("could not connect to display") instead of
raising, so a headless machine gets one line pointing at ``mesolive scan``
and exit code 2.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from mesolive.errors import MesoliveError

log = logging.getLogger(__name__)

#: QT_QPA_PLATFORM values that need no display server.
HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "linuxfb", "eglfs")

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


def missing_xcb_libs(env: Mapping[str, str] | None = None) -> list[str]:
    """Debian packages of the X11 libraries Qt needs and cannot load (Linux, xcb only)."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or _platform(env) not in ("", "xcb"):
        return []
    if not env.get("DISPLAY") or (env.get("WAYLAND_DISPLAY") and not _platform(env)):
        return []
    missing = []
    for lib, pkg in XCB_LIBS.items():
        try:
            ctypes.CDLL(lib)
        except OSError:
            missing.append(pkg)
    return missing


def _import_qt() -> None:
    problem = display_problem()
    if problem:
        raise MesoliveError(
            f"{problem}, so the desktop app cannot open a window; "
            "to analyse videos or streams without one use `mesolive scan INPUT`"
        )
    missing = missing_xcb_libs()
    if missing:
        raise MesoliveError(
            "Qt needs X11 libraries that are missing: apt-get install " + " ".join(missing)
        )
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


def initial_source(args: Any) -> str | None:
    """``--source``, else the first camera found; None means "open the source picker"."""
    if getattr(args, "source", None):
        return str(args.source)
    from mesolive.sources.registry import list_sources

    cams = [s for s in list_sources() if s.kind == "webcam"]
    return cams[0].uri if cams else None


def run(args: Any) -> int:
    """Open the main window and run until it is closed. Returns the exit code."""
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
    return int(code)
