"""Finding top-level windows and their screen regions on X11 (python-xlib).

Every function takes an open ``Xlib.display.Display``; its connection is
used from the thread that opened it only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mesolive.errors import SourceError
from mesolive.sources.screen import Region

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowInfo:
    """A named top-level window: X id, title, viewable, and its region in root pixels."""

    wid: int
    title: str
    viewable: bool
    region: Region


def connect(name: str | None = None) -> Any:
    """Open an X connection (``$DISPLAY`` by default).

    Raises
    ------
    SourceError
        python-xlib is missing or the display cannot be opened.
    """
    try:
        from Xlib import display, error
    except ImportError as e:
        raise SourceError(
            "window capture needs the python-xlib package (pip install python-xlib)"
        ) from e
    try:
        return display.Display(name)
    except (error.DisplayError, error.ConnectionClosedError, OSError) as e:
        raise SourceError(f"cannot open the X display: {e}") from e


def window_title(disp: Any, win: Any) -> str:
    """``_NET_WM_NAME`` (UTF-8) where set, else ``WM_NAME``; '' for none."""
    from Xlib import X

    net_name = disp.intern_atom("_NET_WM_NAME", only_if_exists=True)
    utf8 = disp.intern_atom("UTF8_STRING", only_if_exists=True)
    if net_name != X.NONE and utf8 != X.NONE:
        prop = win.get_full_property(net_name, utf8)
        if prop is not None and len(prop.value):
            value = prop.value
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    name = win.get_wm_name()
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    return name or ""


def window_region(disp: Any, win: Any) -> tuple[bool, Region]:
    """Whether ``win`` is viewable, and its inside area in root-window pixels.

    Raises ``Xlib.error.XError`` (e.g. ``BadWindow``) where the window is gone.
    """
    from Xlib import X

    root = disp.screen().root
    viewable = win.get_attributes().map_state == X.IsViewable
    geom = win.get_geometry()
    origin = root.translate_coords(win, 0, 0)
    return viewable, Region(int(origin.x), int(origin.y), int(geom.width), int(geom.height))


def _candidates(disp: Any) -> list[Any]:
    from Xlib import X, Xatom

    root = disp.screen().root
    atom = disp.intern_atom("_NET_CLIENT_LIST", only_if_exists=True)
    if atom != X.NONE:
        prop = root.get_full_property(atom, Xatom.WINDOW)
        if prop is not None and len(prop.value):
            return [disp.create_resource_object("window", int(w)) for w in prop.value]
    # No EWMH window manager: named top-level windows, or the named child of a WM frame.
    found = []
    for top in root.query_tree().children:
        if window_title(disp, top):
            found.append(top)
            continue
        found.extend(c for c in top.query_tree().children if window_title(disp, c))
    return found


def list_windows(disp: Any) -> list[WindowInfo]:
    """Named top-level windows, in the window manager's order (or stacking order)."""
    from Xlib import error

    out = []
    for win in _candidates(disp):
        try:
            title = window_title(disp, win)
            if not title:
                continue
            viewable, region = window_region(disp, win)
        except error.XError:  # closed while we looked
            continue
        out.append(WindowInfo(int(win.id), title, viewable, region))
    return out


def find_window(disp: Any, title: str) -> WindowInfo:
    """The viewable window whose title contains ``title`` (case-insensitive).

    An exact (case-insensitive) match wins over a partial one; otherwise the
    first in the window manager's order.

    Raises
    ------
    SourceError
        No window matches, or the ones that do are minimised or hidden.
    """
    want = title.casefold()
    windows = list_windows(disp)
    matches = [w for w in windows if want in w.title.casefold()]
    visible = [w for w in matches if w.viewable and w.region.width > 1 and w.region.height > 1]
    if not visible:
        if matches:
            raise SourceError(f"window:{title}: '{matches[0].title}' is minimised or hidden")
        names = sorted({w.title for w in windows if w.viewable})
        shown = ", ".join(repr(n) for n in names[:10]) + (" …" if len(names) > 10 else "")
        raise SourceError(
            f"window:{title}: no window title contains {title!r} (open windows: {shown or 'none'})"
        )
    exact = [w for w in visible if w.title.casefold() == want]
    chosen = (exact or visible)[0]
    if len(visible) > 1:
        log.info("window:%s matches %d windows; using %r", title, len(visible), chosen.title)
    return chosen
