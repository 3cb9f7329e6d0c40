"""A window's own pixels through the X Composite extension (python-xlib).

As OBS's window capture does on X11: the window is redirected to off-screen
storage (``RedirectAutomatic``: the X server still draws it on screen as
before), and each frame names the window's current pixmap and reads it with
``GetImage``. What covers the window, or the part of it off screen, does not
matter: the pixmap holds the window's own contents. A window only has such a
pixmap while it is mapped, so a minimised window still cannot be read.

The redirection belongs to the connection that asked for it and ends when that
connection closes (Composite protocol, "RedirectWindow"), so closing the
source's display undoes it, even for a window that is gone by then.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: NameWindowPixmap, the request this module relies on, came with Composite 0.2.
MIN_VERSION = (0, 2)

#: Bytes per GetImage reply (see :func:`_read`).
BAND_BYTES = 1 << 20


def composite_problem(disp: Any, win: Any) -> str | None:
    """Why ``win`` cannot be read through Composite on ``disp``, or None where it can.

    Checks the extension, its version and the window's pixel format: only
    formats of 32 bits per pixel with 8-bit red, green and blue channels
    (24-bit TrueColor, 32-bit ARGB, what every desktop uses) are converted.
    """
    if not disp.has_extension("Composite"):
        return "this X server has no Composite extension"
    reply = disp.composite_query_version()
    version = (int(reply.major_version), int(reply.minor_version))
    if version < MIN_VERSION:
        return f"this X server's Composite extension is version {version[0]}.{version[1]}"
    depth = int(win.get_geometry().depth)
    bpp = {int(f.depth): int(f.bits_per_pixel) for f in disp.display.info.pixmap_formats}
    visual_id = int(win.get_attributes().visual)
    visual = next(
        (v for d in disp.screen().allowed_depths for v in d.visuals if v.visual_id == visual_id),
        None,
    )
    masks = None if visual is None else (visual.red_mask, visual.green_mask, visual.blue_mask)
    if bpp.get(depth) != 32 or masks != (0xFF0000, 0x00FF00, 0x0000FF):
        return f"the window's pixel format (depth {depth}) is not one mesolive reads directly"
    return None


class CompositeReader:
    """Reads one window's own pixels; build, use and drop it in one thread.

    Parameters
    ----------
    disp
        The open ``Xlib.display.Display`` the window was found on.
    win
        The window (an ``Xlib`` window object). Check it first with
        :func:`composite_problem`.

    Raises
    ------
    Xlib.error.XError
        The window is gone (``BadWindow``) by the time it is redirected.
    """

    def __init__(self, disp: Any, win: Any) -> None:
        from Xlib import error
        from Xlib.ext import composite

        self._win = win
        # The named pixmap includes the border; the frame is the inside.
        self._border = int(win.get_geometry().border_width)
        # BGRX in memory on LSBFirst servers (x86), XRGB on MSBFirst ones.
        self._lsb_first = disp.display.info.image_byte_order == 0
        catch = error.CatchError()
        win.composite_redirect_window(composite.RedirectAutomatic, onerror=catch)
        disp.sync()
        if catch.get_error() is not None:
            raise catch.get_error()

    def grab(self) -> np.ndarray:
        """The window's inside now, as (height, width, 3) uint8 BGR, C-contiguous, owned.

        Raises
        ------
        Xlib.error.XError
            The window is unmapped (``BadMatch`` when its pixmap is named,
            then ``BadDrawable``) or was destroyed (``BadWindow``,
            ``BadDrawable``). No X error is left to python-xlib's default
            handler, which would print it.
        """
        from Xlib import error

        catch = error.CatchError()
        pixmap = self._win.composite_name_window_pixmap(onerror=catch)
        try:
            # One round trip for the size of the pixmap as named: a window that is
            # resized meanwhile gets a new pixmap, and this one keeps its size.
            geom = pixmap.get_geometry()
            b = min(self._border, (int(geom.width) - 1) // 2, (int(geom.height) - 1) // 2)
            pixels = _read(pixmap, b, b, int(geom.width) - 2 * b, int(geom.height) - 2 * b)
        except error.XError as e:
            named = catch.get_error()  # naming failed first (BadMatch: not mapped)
            if named is None:
                raise
            raise named from e
        finally:
            pixmap.free(onerror=error.CatchError())
        if self._lsb_first:
            import cv2

            return cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR)  # a new array, owned
        return np.ascontiguousarray(pixels[:, :, 3:0:-1])  # XRGB → BGR, a copy


def _read(drawable: Any, x: int, y: int, width: int, height: int) -> np.ndarray:
    """``GetImage`` of a 32-bit drawable as (height, width, 4) uint8, in bands of rows.

    python-xlib gathers a reply by appending each chunk read from the socket to
    the bytes received so far, which costs the square of the reply's size: a
    1920×1080 window took 31 ms per frame in one reply, 6 ms in bands of 1 MB
    (1280×720: 10 ms, 3 ms; Xvfb on the 2-core development machine).
    """
    from Xlib import X

    out = np.empty((height, width, 4), np.uint8)
    rows = max(1, BAND_BYTES // (4 * width))
    for top in range(0, height, rows):
        n = min(rows, height - top)
        image = drawable.get_image(x, y + top, width, n, X.ZPixmap, 0xFFFFFFFF)
        out[top : top + n] = np.frombuffer(image.data, np.uint8).reshape(n, width, 4)
    return out
