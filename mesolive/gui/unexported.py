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

from PySide6.QtCore import QObject
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
    """

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
        """Treat the alerts as kept: nothing is asked about them (quitting by a signal)."""
        self._exported = len(self.history.records)

    def ask(self, doing: str, then: Callable[[], None]) -> bool:
        """Ask before ``then`` discards unexported alerts; False: nothing to ask, go on now.

        True means the question is open (or already was): ``then`` runs after
        *Discard*, or once the report chosen by *Export…* is written; never
        after *Cancel*, a closed folder dialog or a report that failed (its
        message is in the banner).
        """
        if self.box is not None:
            return True
        n = self.count
        if not n:
            return False
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

        def answered(button: QAbstractButton) -> None:
            self.box = None
            if button is discard:
                then()
            elif button is export and self._export():
                self._after_export = then

        box.buttonClicked.connect(answered)
        box.finished.connect(box.deleteLater)
        self.box = box
        box.open()
        return True

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
