"""Single-key shortcuts and the widgets that take the same keys.

Before a key press can trigger a shortcut, Qt offers it to the focus widget
as a ``ShortcutOverride`` event, then to each parent up to the window; one
that accepts it gets the key as a normal key press and no shortcut fires.
Line edits and spin boxes accept typed characters themselves. Buttons and
check boxes do not accept Space, their own key, so the window's Space (pause)
would fire instead of ticking the box. :class:`KeyGuard`, an event filter on
the window, accepts the override for them, and for any key typed without
Ctrl, Alt or Meta while a text field has focus, so a future single-key
shortcut cannot fire into one either. Escape in a text field hands the
keyboard back to the window, where the shortcuts work again.
:func:`show_shortcuts` lists the window's shortcuts (F1).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

_COMMAND_MODIFIERS = (
    Qt.KeyboardModifier.ControlModifier
    | Qt.KeyboardModifier.AltModifier
    | Qt.KeyboardModifier.MetaModifier
)


def is_text_input(w: QWidget | None) -> bool:
    """Whether ``w`` takes typed text (a line edit, spin box, text box, editable combo)."""
    if isinstance(w, QComboBox):
        return w.isEditable()
    return isinstance(w, QLineEdit | QAbstractSpinBox | QTextEdit | QPlainTextEdit)


def is_typed(event: QKeyEvent) -> bool:
    """A printable key without Ctrl, Alt or Meta: what a text field would insert."""
    text = event.text()
    return not (event.modifiers() & _COMMAND_MODIFIERS) and bool(text) and text.isprintable()


class KeyGuard(QObject):
    """Keeps the window's single-key shortcuts out of the widget with the keyboard."""

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self._window = window
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind not in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            return False
        focus = QApplication.focusWidget()
        if not isinstance(event, QKeyEvent) or focus is None or focus.window() is not self._window:
            return False
        if kind == QEvent.Type.ShortcutOverride:
            typing = is_text_input(focus) and is_typed(event)
            pressing = isinstance(focus, QAbstractButton) and event.key() == Qt.Key.Key_Space
            if typing or pressing:
                event.accept()  # the focus widget gets the key; no shortcut fires
                return True
            return False
        if event.key() == Qt.Key.Key_Escape and is_text_input(focus):
            focus.clearFocus()  # the keyboard goes back to the window and its shortcuts
            return True
        return False


def show_shortcuts(window: QWidget) -> None:
    """Open (non-modal) a box listing the shortcuts of ``window``'s actions."""
    rows = [
        (a.text().replace("&", ""), a.shortcut().toString())
        for a in window.actions()
        if not a.shortcut().isEmpty()
    ]
    rows.append(("Leave a text field or number box", "Esc"))  # KeyGuard's, not an action's
    text = "\n".join(f"{key:<12} {name}" for name, key in rows)
    box = QMessageBox(
        QMessageBox.Icon.Information,
        "Keyboard shortcuts",
        text,
        QMessageBox.StandardButton.Ok,
        window,
    )
    box.setStyleSheet("QLabel{font-family: monospace;}")
    box.open()
