"""The Settings tab and the command line, applied to the session.

The settings kept from the last run, with the command line's values over
them (:func:`~mesolive.gui.settings.apply_cli`), fill the Settings tab. The
threshold and the alert time go to the running pipeline at once, its one
place of judgement (:meth:`Presenter.set_rule`); what the pipeline is built
with (models, detection size, interval) asks for a restart; looping applies to
the running file at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QObject, QSettings, QTimer, Signal
from PySide6.QtWidgets import QSplitter, QWidget

from mesolive import paths
from mesolive.gui import settings as ui_settings
from mesolive.gui.controls import ControlsPanel
from mesolive.gui.presenter import Presenter

if TYPE_CHECKING:
    from mesolive.pipeline.pipeline import PipelineConfig


class SettingsController(QObject):
    """The window's settings: the kept ones, the command line's, the Settings tab.

    Parameters
    ----------
    args
        The parsed command line.
    qsettings
        Where settings are kept between runs.

    Signals
    -------
    restart_needed()
        What the pipeline is built with changed while it runs (debounced:
        a spin box emits at each step).
    """

    restart_needed = Signal()

    RESTART_DELAY_MS = 600

    def __init__(
        self, args: Any, qsettings: QSettings, presenter: Presenter, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.args = args
        self.qsettings = qsettings
        self.presenter = presenter
        self.settings = ui_settings.apply_cli(ui_settings.load(qsettings), args)
        presenter.set_rule(self.settings.threshold, self.settings.alert_seconds)
        self.controls = ControlsPanel(self.settings)
        forced = paths.model_dir_override(getattr(args, "model_dir", None))
        if forced is not None:  # wins over the kept folder for this run (not kept)
            given_by = "--model-dir" if getattr(args, "model_dir", None) else "MESOLIVE_MODEL_DIR"
            self.controls.model_folder.force(forced, given_by)
        self.restart_timer = QTimer(self)
        self.restart_timer.setSingleShot(True)
        self.restart_timer.setInterval(self.RESTART_DELAY_MS)
        self.restart_timer.timeout.connect(self.restart_needed)
        self.controls.pipeline_changed.connect(self._on_pipeline_settings)
        self.controls.loop_files.toggled.connect(self._on_loop)
        self.controls.threshold_changed.connect(self._on_threshold)
        self.controls.alerts_changed.connect(self._on_alert_settings)

    def pipeline_config(self) -> PipelineConfig:
        """The :class:`PipelineConfig` of the current controls and command line."""
        from mesolive.pipeline.pipeline import PipelineConfig

        s = self.controls.store(self.settings)
        a = self.args
        return PipelineConfig(
            models=tuple(s.models),
            detector=getattr(a, "detector", None),
            det_size=s.det_size or None,
            every=s.every or 1,  # 0 = auto: start at every frame
            threshold=s.threshold,
            alert_seconds=s.alert_seconds,
            **{
                k: v
                for k in ("reid_seconds", "min_face_span")
                if (v := getattr(a, k, None)) is not None
            },
            backend=getattr(a, "backend", "auto") or "auto",
            model_dir=self.model_dir(),
            threads=getattr(a, "threads", None),
        )

    def model_dir(self) -> str | None:
        """The model folder of the next start: the option, else the variable, else the kept one."""
        forced = paths.model_dir_override(getattr(self.args, "model_dir", None))
        if forced is not None:
            return str(forced)
        return self.controls.model_folder.value or None

    def restore_window(self, window: QWidget, splitter: QSplitter) -> None:
        """Give ``window`` and its ``splitter`` the size and place they had when last closed."""
        geo = self.qsettings.value("window/geometry")
        if isinstance(geo, QByteArray) and not geo.isEmpty():
            window.restoreGeometry(geo)
        else:
            window.resize(1320, 800)
        split = self.qsettings.value("window/splitter")
        if isinstance(split, QByteArray) and not split.isEmpty():
            splitter.restoreState(split)

    def save(self, window: QWidget, splitter: QSplitter) -> None:
        """Keep the Settings tab's values, ``window``'s geometry and its ``splitter``."""
        self.controls.store(self.settings)
        ui_settings.save(self.qsettings, self.settings)
        self.qsettings.setValue("window/geometry", window.saveGeometry())
        self.qsettings.setValue("window/splitter", splitter.saveState())
        self.qsettings.sync()

    def stop(self) -> None:
        """No restart after this (the window is closing)."""
        self.restart_timer.stop()

    def _on_pipeline_settings(self) -> None:
        self.controls.store(self.settings)
        if self.presenter.running:
            self.restart_timer.start()

    def _on_loop(self, on: bool) -> None:
        # To the running file at once: restarting would end the session and its alerts.
        self.settings.loop_files = on
        self.presenter.set_loop(on)

    def _on_threshold(self, value: float) -> None:
        # To the pipeline only: what is drawn follows the results judged with it.
        self.settings.threshold = value
        self.presenter.set_rule(value, self.settings.alert_seconds)

    def _on_alert_settings(self) -> None:
        self.controls.store(self.settings)
        self.presenter.set_rule(self.settings.threshold, self.settings.alert_seconds)
