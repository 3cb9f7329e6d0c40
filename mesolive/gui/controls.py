"""The settings panel: models and their folder, threshold, detection size and interval, alerts.

Each number field is checked (:mod:`mesolive.gui.fields`): a value not
accepted gets a message beside the field and is not applied.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QVBoxLayout,
    QWidget,
)

from mesolive.gui.fields import CheckedField, DoubleBox, IntBox, config_problem
from mesolive.gui.model_folder import ModelFolderField
from mesolive.gui.settings import ARCHS, DET_SIZES, VARIANTS, UiSettings, split_models
from mesolive.models.registry import default_model

_ARCH_LABELS = {"meso4": "Meso-4", "mesoinception4": "MesoInception-4"}
_VARIANT_LABELS = {"df": "Deepfake (DF)", "f2f": "Face2Face (F2F)"}


class ControlsPanel(QWidget):
    """Edits a :class:`UiSettings`; emits what changed.

    Signals
    -------
    pipeline_changed()
        Models, detection size or interval changed: the pipeline must restart.
    threshold_changed(float)
    alerts_changed()
    """

    pipeline_changed = Signal()
    threshold_changed = Signal(float)
    alerts_changed = Signal()

    def __init__(self, settings: UiSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._custom_models: tuple[str, ...] | None = None

        models_box = QGroupBox("Models")
        self.arch = QComboBox()
        self._default = default_model()
        if split_models((self._default,)) is None:  # a model of its own, not an arch-variant
            self.arch.addItem(f"Default: {self._default} (today's forgeries)", "default")
        for a in ARCHS:
            self.arch.addItem(_ARCH_LABELS[a] + " (authors', 2018)", a)
        self.arch.setToolTip(
            "the default model, or the authors' 2018 networks (MesoInception-4 is ~3x slower)"
        )
        self.variant_boxes: dict[str, QCheckBox] = {}
        row = QHBoxLayout()
        for v in VARIANTS:
            cb = QCheckBox(_VARIANT_LABELS[v])
            cb.setToolTip("trained on this kind of forgery; both: the mean of the two scores")
            self.variant_boxes[v] = cb
            row.addWidget(cb)
        self.model_folder = ModelFolderField()
        form = QFormLayout(models_box)
        form.addRow("Network", self.arch)
        form.addRow("Trained on", row)
        self._models_form, self._variants_row = form, row  # the authors' networks' row
        form.addRow("Model folder", self.model_folder)
        form.addRow(self.model_folder.message)

        analysis = QGroupBox("Analysis")
        self.threshold = DoubleBox()
        self.threshold.setRange(0.0, 1.0)  # what can be typed; the pipeline says what it takes
        self.threshold.setSingleStep(0.05)
        self.threshold.setDecimals(2)
        self.threshold.setToolTip(
            "centre of the 'uncertain' band: a face is FAKE (red) above it + 0.1, "
            "real (green) below it - 0.1"
        )
        self.det_size = QComboBox()
        for size in DET_SIZES:
            self.det_size.addItem("auto" if size == 0 else f"{size} px", size)
        self.det_size.setToolTip("face detector input size: larger finds smaller faces, slower")
        self.every = IntBox()
        self.every.setRange(0, 30)
        self.every.setSuffix(" frame(s)")
        self.every.setSpecialValueText("auto")  # 0: the status bar shows the N chosen
        self.every.setToolTip(
            "detect and classify every N-th frame; track in between. auto: N is raised or "
            "lowered to keep up with the source (the status bar shows it and why)"
        )
        self.loop_files = QCheckBox("Loop video files")
        self.threshold_field = CheckedField(
            self.threshold,
            config_problem(threshold=0.0),  # the pipeline's words for what it accepts
            lambda v: config_problem(threshold=v),
            self,
        )
        self.every_field = CheckedField(
            self.every, "expected auto (0) or a whole number from 1 to 30", parent=self
        )
        form = QFormLayout(analysis)
        form.addRow("Threshold", self.threshold)
        form.addRow(self.threshold_field.message)
        form.addRow("Detection size", self.det_size)
        form.addRow("Analyse every", self.every)
        form.addRow(self.every_field.message)
        form.addRow(self.loop_files)

        alerts = QGroupBox("Alerts")
        self.alert_seconds = DoubleBox()
        self.alert_seconds.setRange(0.0, 600.0)
        self.alert_seconds.setSingleStep(0.5)
        self.alert_seconds.setSuffix(" s")
        self.alert_seconds.setToolTip("alert when a face stays FAKE (red) this long")
        self.alert_sound = QCheckBox("Sound")
        self.alert_notify = QCheckBox("Desktop notification")
        self.alert_seconds_field = CheckedField(
            self.alert_seconds,
            "expected 0 to 600 s",
            lambda v: config_problem(alert_seconds=v),
            self,
        )
        form = QFormLayout(alerts)
        form.addRow("Above threshold for", self.alert_seconds)
        form.addRow(self.alert_seconds_field.message)
        form.addRow(self.alert_sound)
        form.addRow(self.alert_notify)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(models_box)
        lay.addWidget(analysis)
        lay.addWidget(alerts)
        lay.addStretch(1)

        self.load(settings)
        self.arch.currentIndexChanged.connect(self._models_edited)
        for cb in self.variant_boxes.values():
            cb.toggled.connect(self._models_edited)
        self.det_size.currentIndexChanged.connect(lambda _i: self.pipeline_changed.emit())
        self.every_field.accepted.connect(lambda _v: self.pipeline_changed.emit())
        self.threshold_field.accepted.connect(self.threshold_changed.emit)
        for w in (self.alert_sound, self.alert_notify):
            w.toggled.connect(lambda _b: self.alerts_changed.emit())
        self.alert_seconds_field.accepted.connect(lambda _v: self.alerts_changed.emit())

    # -- settings in and out ---------------------------------------------------------

    def load(self, s: UiSettings) -> None:
        """Show ``s`` without emitting change signals."""
        widgets = [self.arch, self.det_size]
        widgets += [*self.variant_boxes.values(), self.alert_sound, self.alert_notify]
        widgets.append(self.loop_files)
        for w in widgets:
            w.blockSignals(True)
        try:
            self._set_models(s.models)
            self.threshold_field.load(s.threshold)
            idx = self.det_size.findData(s.det_size)
            if idx < 0:
                self.det_size.addItem(f"{s.det_size} px", s.det_size)
                idx = self.det_size.count() - 1
            self.det_size.setCurrentIndex(idx)
            self.every_field.load(s.every)
            self.alert_seconds_field.load(s.alert_seconds)
            self.alert_sound.setChecked(s.alert_sound)
            self.alert_notify.setChecked(s.alert_notify)
            self.loop_files.setChecked(s.loop_files)
        finally:
            for w in widgets:
                w.blockSignals(False)
        self.model_folder.load(s.model_dir, self.models())

    def store(self, s: UiSettings) -> UiSettings:
        """Copy the controls' values into ``s`` (and return it)."""
        s.models = self.models()
        s.threshold = round(self.threshold_field.value, 4)  # the values in force
        s.det_size = int(self.det_size.currentData())
        s.every = self.every_field.value
        s.alert_seconds = self.alert_seconds_field.value
        if not self.model_folder.forced_by:  # one given for the run is not kept
            s.model_dir = self.model_folder.value
        s.alert_sound = self.alert_sound.isChecked()
        s.alert_notify = self.alert_notify.isChecked()
        s.loop_files = self.loop_files.isChecked()
        return s

    def models(self) -> tuple[str, ...]:
        """The model names picked, e.g. ``("meso4-df", "meso4-f2f")``."""
        arch = self.arch.currentData()
        if arch == "custom" and self._custom_models:
            return self._custom_models
        if arch == "default":
            return (self._default,)
        picked = tuple(f"{arch}-{v}" for v, cb in self.variant_boxes.items() if cb.isChecked())
        return picked or (f"{arch}-df",)

    def _set_models(self, models: tuple[str, ...]) -> None:
        if tuple(models) == (self._default,) and self.arch.findData("default") >= 0:
            self.arch.setCurrentIndex(self.arch.findData("default"))
            self._show_variants(False)
            return
        split = split_models(models)
        if split is None:  # a trained model or a mix: keep it as one "custom" choice
            self._custom_models = tuple(models)
            idx = self.arch.findData("custom")
            if idx < 0:
                self.arch.addItem("Custom: " + ", ".join(models), "custom")
                idx = self.arch.count() - 1
            self.arch.setCurrentIndex(idx)
            self._show_variants(False)
            return
        arch, variants = split
        self.arch.setCurrentIndex(self.arch.findData(arch))
        self._show_variants(True)
        for v, cb in self.variant_boxes.items():
            cb.setChecked(v in variants)

    def _show_variants(self, on: bool) -> None:
        """Show the "Trained on" boxes only for the authors' networks: shown greyed out
        beside the default model, their ticks read as what it was trained on."""
        self._models_form.setRowVisible(self._variants_row, on)

    def _models_edited(self) -> None:
        custom = self.arch.currentData() in ("custom", "default")
        self._show_variants(not custom)
        if not custom and not any(cb.isChecked() for cb in self.variant_boxes.values()):
            cb = self.variant_boxes["df"]  # at least one model always runs
            cb.blockSignals(True)
            cb.setChecked(True)
            cb.blockSignals(False)
        self.model_folder.set_models(self.models())
        self.pipeline_changed.emit()
