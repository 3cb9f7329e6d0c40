"""Checked number fields: a value that is not accepted gets a message, never a silent revert.

Qt's spin boxes refuse a keystroke that would make an out-of-range number
and, on leaving the field, put back the previous value without a word. The
boxes here let any text be typed; :class:`CheckedField` then says beside the
field what is accepted, applies only accepted values (when typing is done:
Enter or leaving the field; arrows apply at once) and, when Qt puts the value
in force back on leaving the field, says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QAbstractSpinBox, QDoubleSpinBox, QLabel, QSpinBox

from mesolive.errors import InputError

MESSAGE_STYLE = "color:#a3161d;"  # the error banner's red


def _lenient(result: Any, text: str, pos: int) -> Any:
    state = result[0] if isinstance(result, tuple) else result
    if state == QValidator.State.Invalid:  # keep what was typed; the field says why
        return (QValidator.State.Intermediate, text, pos)
    return result


class DoubleBox(QDoubleSpinBox):
    """A :class:`QDoubleSpinBox` that keeps any text typed (see the module docstring)."""

    def validate(self, text: str, pos: int) -> object:
        return _lenient(super().validate(text, pos), text, pos)


class IntBox(QSpinBox):
    """A :class:`QSpinBox` that keeps any text typed (see the module docstring)."""

    def validate(self, text: str, pos: int) -> object:
        return _lenient(super().validate(text, pos), text, pos)


def config_problem(**values: Any) -> str:
    """Why :class:`PipelineConfig` refuses these values; "" when it takes them.

    The pipeline's own checks are the one source of truth for what a setting
    accepts: the message is theirs, without the command-line option it names
    (``--threshold 0.0: expected a value in (0, 1)`` → ``expected a value in (0, 1)``).
    """
    from mesolive.pipeline.pipeline import PipelineConfig

    try:
        replace(PipelineConfig(), **values)
    except InputError as e:
        return str(e).split(": ", 1)[-1]
    return ""


class CheckedField(QObject):
    """Checks a spin box: applies accepted values, explains the others beside it.

    Parameters
    ----------
    box
        A :class:`DoubleBox` or :class:`IntBox`.
    accepts
        What the field takes, in words (``"expected 0 to 600 s"``).
    rule
        Check of a value the box holds (inside its range); returns the problem or "".

    Signals
    -------
    accepted(object)
        A new value to apply (a float or an int, as the box holds).
    """

    accepted = Signal(object)

    def __init__(
        self,
        box: QAbstractSpinBox,
        accepts: str,
        rule: Callable[[float], str] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.box = box
        self.accepts = accepts
        self.rule = rule or (lambda _v: "")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet(MESSAGE_STYLE)
        self.message.hide()
        self.value: Any = box.value()  # the value in force (the last accepted)
        self._rejected = ""  # text typed that the box did not take
        # A value typed is applied once done (Enter, leaving the field), not per
        # keystroke: typing 45 must not apply 4 on the way.
        box.setKeyboardTracking(False)
        box.valueChanged.connect(self._check)
        box.lineEdit().textEdited.connect(self._edited)
        box.editingFinished.connect(self._finished)

    def load(self, value: float) -> None:
        """Show and hold ``value`` without emitting :attr:`accepted`."""
        self.box.blockSignals(True)
        try:
            self.box.setValue(value)
        finally:
            self.box.blockSignals(False)
        self.value = self.box.value()
        self._rejected = ""
        self._say("")

    def _say(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def _in_force(self) -> str:
        special = self.box.specialValueText()  # "auto" for the interval's 0
        if special and self.value == self.box.minimum():
            return special
        return self.box.textFromValue(self.value) + self.box.suffix()

    def _check(self, value: float) -> None:
        problem = self.rule(value)
        if problem:
            self._say(f"{problem}; {self._in_force()} stays in force")
            return
        self._say("")
        if value != self.value:
            self.value = value
            self.accepted.emit(value)

    def _edited(self, text: str) -> None:
        if self.box.hasAcceptableInput():  # checked now, applied when done
            self._rejected = ""
            problem = self.rule(self.box.valueFromText(self.box.cleanText()))
            self._say(f"{problem}; {self._in_force()} stays in force" if problem else "")
        else:
            self._rejected = text.strip()
            self._say(f"{self._rejected!r} is not accepted: {self.accepts}")

    def _finished(self) -> None:
        if self._rejected:  # Qt has put the value in force back: say so
            self._say(
                f"{self._rejected!r} was not accepted ({self.accepts}); "
                f"{self._in_force()} stays in force"
            )
            self._rejected = ""
