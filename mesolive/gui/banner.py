"""A one-line coloured message across the top of the video, with its buttons."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from mesolive.gui.presenter import Level

_STYLES = {
    Level.INFO: "background:#2d4f73; color:white;",
    Level.WARNING: "background:#b36b00; color:white;",
    Level.ERROR: "background:#a3161d; color:white;",
}


class Banner(QFrame):
    """A message with a level (its colour); hidden until there is one.

    ``action`` is the banner's own button (``action_text``); ``settings``, the
    "Model folder…" button, leads to the model folder in the Settings tab.
    """

    action_clicked = Signal()
    settings_clicked = Signal()

    def __init__(self, action_text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.action = QPushButton(action_text)
        self.action.setVisible(bool(action_text))
        self.action.clicked.connect(self.action_clicked.emit)
        self.settings = QPushButton("Model folder…")
        self.settings.setToolTip("set the folder the models are read from (Settings tab)")
        self.settings.setVisible(False)
        self.settings.clicked.connect(self.settings_clicked.emit)
        self.close_button = QPushButton("Dismiss")
        self.close_button.clicked.connect(self.hide)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 10, 6)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.action)
        lay.addWidget(self.settings)
        lay.addWidget(self.close_button)
        self.level = Level.INFO
        self.hide()

    def show_message(
        self, level: Level, text: str, *, action: bool = False, settings: bool = False
    ) -> None:
        """Show ``text`` (an empty one hides the banner) with the buttons asked for."""
        if not text:
            self.hide()
            return
        self.level = level
        self.setStyleSheet(f"Banner {{{_STYLES[level]}}} QLabel {{color:white; font-weight:bold;}}")
        self.label.setText(text)
        self.action.setVisible(action and bool(self.action.text()))
        self.settings.setVisible(settings)
        self.show()
