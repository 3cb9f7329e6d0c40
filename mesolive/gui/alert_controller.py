"""What the window does with the session's alerts: banner, sound, notification, history.

The pipeline raises the alerts; the presenter passes them on
(``alert_raised``, just before the result that raised them). Here each one
shows in :attr:`AlertController.banner`, beeps and notifies as the settings
say at that moment, and joins the history behind the Alerts tab
(:attr:`AlertController.panel`), which a new session empties.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QApplication, QStyle, QSystemTrayIcon, QWidget

from mesolive.gui.alert_history import AlertHistory, report_files
from mesolive.gui.alert_panel import AlertPanel
from mesolive.gui.banner import Banner
from mesolive.gui.presenter import Level, Presenter, State
from mesolive.gui.report import Writer
from mesolive.gui.settings import UiSettings
from mesolive.gui.tracks import Alert


class AlertController(QObject):
    """The alert banner, the Alerts tab and the notifications of one window.

    ``settings`` is read at each alert (sound, desktop notification), so a
    change in the Settings tab applies to the next one.
    """

    def __init__(self, presenter: Presenter, settings: UiSettings, window: QWidget) -> None:
        super().__init__(window)
        self.settings = settings
        self._window = window
        self.banner = Banner()
        self.history = AlertHistory()
        self.panel = AlertPanel(self.history, presenter.tracks)
        self._tray: QSystemTrayIcon | None = None
        presenter.alert_raised.connect(self.on_alert)
        presenter.alert_raised.connect(self.history.add_alert)
        presenter.result_ready.connect(self.history.add_result)
        presenter.state_changed.connect(self._on_state)

    def on_alert(self, alert: Alert) -> None:
        """Banner always; sound and desktop notification as the settings say."""
        self.banner.show_message(Level.ERROR, "⚠ " + alert.message)
        if self.settings.alert_sound:
            QApplication.beep()  # Qt Multimedia is not in PySide6-Essentials
        if self.settings.alert_notify and QSystemTrayIcon.isSystemTrayAvailable():
            self._tray_icon().showMessage(
                "mesolive", alert.message, QSystemTrayIcon.MessageIcon.Warning, 8000
            )

    def report_files(self) -> dict[str, tuple[str, Writer]]:
        """The report's alert files, from a snapshot of the history taken now."""
        return report_files(self.history.snapshot())

    def close(self) -> None:
        """The window closes: take the tray icon away."""
        if self._tray is not None:
            self._tray.hide()

    def _tray_icon(self) -> QSystemTrayIcon:
        if self._tray is None:
            self._tray = QSystemTrayIcon(self._window.windowIcon(), self)
            if self._tray.icon().isNull():
                self._tray.setIcon(
                    self._window.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
                )
            self._tray.show()
        return self._tray

    def _on_state(self, state: State) -> None:
        """A new session starts a new history; an ended one ends its open alerts."""
        if state is State.STARTING:
            self.history.clear()
        elif state is State.STOPPED:
            self.history.finish()
