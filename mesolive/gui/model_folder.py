"""The Settings tab's model folder: where the detector and weights are read offline.

A folder is taken only when it holds what the next start needs, checked by
the same functions that will read it (:func:`mesolive.models.registry.resolve_file`
and :func:`~mesolive.models.registry.weights_path`): the detector
(``scrfd_500m_bnkps_dynamic.onnx``) and the weights of every network of the
models picked, each with the manifest's sha256. A folder given by
``--model-dir`` or ``MESOLIVE_MODEL_DIR`` wins for that run (the field then
shows it, read-only) and is not kept.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from mesolive.detect.scrfd import DYNAMIC_FILE
from mesolive.errors import ModelError
from mesolive.gui.fields import MESSAGE_STYLE
from mesolive.models.registry import (
    get_spec,
    list_detectors,
    networks,
    resolve_file,
    weights_path,
)

log = logging.getLogger(__name__)


def model_folder_problem(folder: str, models: tuple[str, ...]) -> str:
    """Why ``folder`` cannot serve ``models`` offline; "" when it can (or is empty: none)."""
    if not folder:
        return ""
    path = Path(folder).expanduser()
    if not path.is_dir():
        return f"{path}: no such folder"
    try:
        detector = next(d for d in list_detectors() if d.file == DYNAMIC_FILE)
        resolve_file(detector.file, detector.sha256, "", path)
        for name in models:
            for net in networks(get_spec(name)):
                if not (net.builtin or net.user):  # those never come from the folder
                    weights_path(net, path, progress=False)
    except ModelError as e:
        return str(e)
    return ""


class ModelFolderField(QWidget):
    """A folder path and a Browse… button; :attr:`message` (placed below) says when it will not do.

    :attr:`value` is the folder in force, read at each start ("" = none:
    models are read from the cache or downloaded).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("none: the cache, downloading what is missing")
        self.edit.setClearButtonEnabled(True)
        self.edit.setToolTip(
            "a folder holding the detector (scrfd_500m_bnkps_dynamic.onnx) and the "
            "weights of the models picked, for use without a network; used from the "
            "next start (F5)"
        )
        self.browse = QPushButton("Browse…")
        self.browse.clicked.connect(self.choose)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.hide()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(self.browse)
        self.value = ""  # the folder in force (the last accepted)
        self.forced_by = ""  # "--model-dir" or "MESOLIVE_MODEL_DIR": the run's, read-only
        self._models: tuple[str, ...] = ()
        self.edit.editingFinished.connect(lambda: self.check(self.edit.text().strip()))
        self.dialog: QFileDialog | None = None

    def load(self, folder: str, models: tuple[str, ...]) -> None:
        """Show the kept ``folder``; check it for ``models`` (a bad one is not taken)."""
        self._models = tuple(models)
        self.edit.setText(folder)
        self.value = ""
        self.check(folder)

    def force(self, folder: Path, given_by: str) -> None:
        """This run reads ``folder`` (``given_by``: the option or variable); the field shows it."""
        self.forced_by = given_by
        self.edit.setText(str(folder))
        self.edit.setClearButtonEnabled(False)
        for w in (self.edit, self.browse):
            w.setEnabled(False)
        self._say(f"set by {given_by} for this run", error=False)

    def set_models(self, models: tuple[str, ...]) -> None:
        """The models picked changed: the folder must hold theirs."""
        self._models = tuple(models)
        if not self.forced_by:
            self.check(self.edit.text().strip())

    def check(self, folder: str) -> bool:
        """Take ``folder`` if it will do, else say why beside the field (and keep the old one)."""
        if self.forced_by:
            return False
        problem = model_folder_problem(folder, self._models)
        if problem:
            kept = f"{self.value} stays in force" if self.value else "no model folder is used"
            self._say(f"{problem}; {kept}", error=True)
            log.info("model folder not taken: %s", problem)
            return False
        self._say("used from the next start (F5)" if folder else "", error=False)
        self.value = folder
        return True

    def choose(self) -> None:
        """Pick the folder in Qt's own dialog (the same offscreen and on every desktop)."""
        dlg = QFileDialog(self, "Model folder", self.edit.text() or str(Path.home()))
        dlg.setFileMode(QFileDialog.FileMode.Directory)
        dlg.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dlg.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        # Deleted by Qt, in this thread, once closed: its file system model has a
        # thread of its own that must not be torn down by a garbage collection
        # running in a worker thread.
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)

        def picked(folder: str) -> None:
            self.edit.setText(folder)
            self.check(folder)

        def closed(_code: int) -> None:
            self.dialog = None

        dlg.fileSelected.connect(picked)
        dlg.finished.connect(closed)
        dlg.open()
        self.dialog = dlg

    def focus(self) -> None:
        """Put the keyboard in the field (the banner's "Model folder…" button)."""
        self.edit.setFocus()
        self.edit.selectAll()

    def _say(self, text: str, *, error: bool) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(MESSAGE_STYLE if error else "color:palette(mid);")
        self.message.setVisible(bool(text))
