"""Overlay mode for the running session: one click-through window over its capture region.

The controller asks the presenter where the running screen or window source
reads (:meth:`Presenter.capture_region`, the source's own region, which a
window source keeps up to date as its window moves) and lays an
:class:`OverlayWindow` over it; a timer follows changes. Nothing is opened or
queried on the X server for this: the capture thread already knows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from PySide6.QtCore import QObject, QTimer

from mesolive.gui.overlay_window import OverlayWindow, overlay_problem
from mesolive.gui.presenter import Presenter
from mesolive.types import FrameResult

log = logging.getLogger(__name__)

#: Sources whose pixels are a rectangle of the screen.
OVERLAY_SCHEMES = ("screen:", "window:")

NOT_A_SCREEN = (
    "overlay mode draws over a screen or window source (screen:N, screen:N@x,y,w,h or "
    "window:TITLE), not over a camera or a file"
)


class OverlayController(QObject):
    """Shows, places and feeds the overlay window while overlay mode is on.

    Parameters
    ----------
    presenter
        The session whose source region is covered.
    history
        Track ID → recent frame scores, for the labels' sparklines.
    """

    FOLLOW_INTERVAL_MS = 500  # window sources move; a region read costs nothing

    def __init__(
        self,
        presenter: Presenter,
        history: Callable[[], Mapping[int, Sequence[float]]],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.presenter = presenter
        self.history = history
        self.window: OverlayWindow | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(self.FOLLOW_INTERVAL_MS)
        self._timer.timeout.connect(self.follow)

    @property
    def active(self) -> bool:
        return self.window is not None

    def start(self, result: FrameResult | None) -> str | None:
        """Turn overlay mode on over the session's source; returns why it cannot, or None.

        Until the source has opened (its region is known) the window stays hidden.
        """
        self.stop()
        problem = overlay_problem()
        if problem is None and not self.presenter.uri.startswith(OVERLAY_SCHEMES):
            problem = NOT_A_SCREEN
        if problem is not None:
            return problem
        self.window = OverlayWindow()
        self.window.set_result(result, self.history())
        self.follow()
        self._timer.start()
        return None

    def stop(self) -> None:
        self._timer.stop()
        if self.window is not None:
            self.window.close()
            self.window.deleteLater()
            self.window = None

    def follow(self) -> None:
        """Lie over the source's region now; show the window once there is one."""
        win = self.window
        if win is None:
            return
        region = self.presenter.capture_region()
        if region is None:
            return  # not open yet, or reopening: stay where it was
        if region != win.region:
            log.debug("overlay over %s", region)
            win.place(region)
            # known once the source is open; a new source may read otherwise
            sees = self.presenter.capture_sees_overlay()
            win.keep_clear_of_crops(self._crop_scale() if sees else None)
        if not win.isVisible():
            win.show()

    def _crop_scale(self) -> float:
        """The widest crop the session's models cut, against the authors' square."""
        from mesolive.models.registry import get_spec

        config = self.presenter.config
        models = config.models if config is not None else ()
        return max((get_spec(name).preprocess.scale for name in models), default=1.0)

    def clear(self) -> None:
        """No boxes until the next result (the source was lost)."""
        if self.window is not None:
            self.window.set_result(None)

    def set_result(self, result: FrameResult) -> None:
        if self.window is not None:
            self.window.set_result(result, self.history())
