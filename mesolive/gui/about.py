"""Help ▸ About mesolive: the version, the model in use and what its verdicts are worth."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from mesolive import __version__
from mesolive.errors import MesoliveError
from mesolive.models.registry import default_model, get_spec


def about_text() -> str:
    """The box's text: plain, so that it can be copied into a bug report."""
    name = default_model()
    try:
        spec = get_spec(name)
        licence, why = spec.license, spec.default_reason
    except MesoliveError as e:  # a broken user registry must not break Help
        licence, why = str(e), ""
    return "\n\n".join(
        part
        for part in (
            f"mesolive {__version__}: a real-time deepfake detector (MesoNet: Afchar et al., "
            '"MesoNet: a Compact Facial Video Forgery Detection Network", WIFS 2018).',
            f"Default model: {name}" + (f" ({why})" if why else "") + f". Licence: {licence}.",
            "A verdict is a measurement, not proof: forgeries unlike those a model was trained "
            "on are often called real, and sharp genuine footage is sometimes called fake. "
            'README.md ("What to expect") gives each model\'s numbers per source; '
            "'mesolive models list' lists the models.",
        )
    )


def show_about(window: QWidget) -> QMessageBox:
    """Open (non-modal) the About box over ``window``; returns it."""
    box = QMessageBox(
        QMessageBox.Icon.Information, "About mesolive", about_text(), QMessageBox.StandardButton.Ok,
        window,
    )  # fmt: skip
    box.open()
    return box
