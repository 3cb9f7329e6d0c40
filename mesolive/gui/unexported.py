"""Asking before a new session or quitting discards alerts no exported report holds.

A session's alerts (the faces that looked forged, with their thumbnails and
timelines) live only in the window until a report is exported (Ctrl+E). A
new session empties the list, and quitting ends it, so both first ask, when
there are alerts that no report finished since the session began holds:
*Export…* writes the report and then goes on, *Discard* goes on, *Cancel*
keeps the session. The question is a window-modal box opened without a
nested event loop, so the session keeps running behind it. Without alerts
nothing is asked: the report of a session in which nothing looked forged is
not worth a question at every switch. A quit signal (Ctrl+C in the terminal,
SIGTERM) does not ask (:meth:`UnexportedAlerts.waive`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QAbstractButton, QMessageBox, QWidget

from mesolive.gui.exporter import ExportOutcome
from mesolive.gui.presenter import State

if TYPE_CHECKING:
    from mesolive.gui.alert_history import AlertHistory
    from mesolive.gui.export_controller import ExportController
    from mesolive.gui.presenter import Presenter


class UnexportedAlerts(QObject):
    """Counts the session's alerts that no exported report holds, and asks before losing them.

    Parameters
    ----------
    history
        The session's alerts (emptied when a session starts).
    exporter
        Writes the reports; its ``finished`` outcome says whether one was written.
    presenter
        The session, whose start resets the count.
    export
        Starts exporting the report (asking where); False if it did not start.
    window
        The window the question belongs to.

    Signals
    -------
    status(str, int)
        A status-bar message and how long to show it (ms).
    """

    status = Signal(str, int)

    def __init__(
        self,
        history: AlertHistory,
        exporter: ExportController,
        presenter: Presenter,
        export: Callable[[], bool],
        window: QWidget,
    ) -> None:
        super().__init__(window)
        self.history = history
        self.exporter = exporter
        self._export = export
        self._window = window
        self._exported = 0  # alerts of this session that a written report holds
        self._in_export = 0  # alerts in the report being written
        self._after_export: Callable[[], None] | None = None
        self.box: QMessageBox | None = None
        exporter.finished.connect(self._on_exported)
        presenter.state_changed.connect(self._on_state)

    @property
    def count(self) -> int:
        """Alerts of this session that no written report holds."""
        return max(0, len(self.history.records) - self._exported)

    def export_started(self) -> None:
        """A report of the session, with every alert so far, is being written."""
        self._in_export = len(self.history.records)

    def waive(self) -> None:
        """Treat the alerts as kept: nothing is asked about them, and an open question is
        closed (quitting by a signal)."""
        self._exported = len(self.history.records)
        self._after_export = None
        if self.box is not None:
            self.box.reject()

    def ask(
        self, doing: str, then: Callable[[], None], kept: str = "Nothing was discarded"
    ) -> bool:
        """Ask before ``then`` discards unexported alerts; False: nothing to ask, go on now.

        True means ``then`` runs later or not at all: after *Discard*, or once
        the report chosen by *Export…* (or one being written that holds every
        alert) is written; never after *Cancel* or the box's closing, a closed
        folder dialog or a report that failed (its message is in the banner).
        ``kept`` is the status-bar line when nothing is discarded.
        """
        n = self.count
        if not n:
            return False
        if self.box is not None:  # already asked
            return True
        if self.exporter.reports.busy and self._in_export >= len(self.history.records):
            self._after_export = then  # the report being written holds them all
            return True
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Unexported alerts",
            f"This session raised {n} alert{'s' if n != 1 else ''} that no exported report "
            f"holds. {doing} discards {'them' if n != 1 else 'it'}.",
            QMessageBox.StandardButton.NoButton,
            self._window,
        )
        box.setInformativeText("Export the session report first?")
        export = box.addButton("Export…", QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(export)
        answer: list[QAbstractButton] = []

        def closed() -> None:  # by a button, Escape, its title bar or waive()
            self.box = None
            box.deleteLater()
            if answer and answer[0] is discard:
                then()
            elif answer and answer[0] is export:
                self._export_then(then, kept)
            else:
                self.status.emit(kept, 10000)

        box.buttonClicked.connect(answer.append)
        box.finished.connect(closed)
        self.box = box
        box.open()
        return True

    def _export_then(self, then: Callable[[], None], kept: str) -> None:
        """Export (the folder dialog opens once the question has closed), then ``then``."""
        if self._export():
            self._after_export = then
        else:
            self.status.emit(f"Not exported. {kept}", 10000)

    def _on_exported(self, outcome: ExportOutcome) -> None:
        then, self._after_export = self._after_export, None
        if outcome.error:
            return
        self._exported = max(self._exported, self._in_export)
        if then is not None:
            then()

    def _on_state(self, state: State) -> None:
        if state is State.STARTING:  # a new session: a new list of alerts
            self._exported = self._in_export = 0
            self._after_export = None
