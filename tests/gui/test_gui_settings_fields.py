"""The Settings tab, typed into as a user does: checked fields, the model folder, shortcuts."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog

from mesolive.detect.scrfd import DYNAMIC_FILE
from mesolive.gui import settings as ui_settings
from mesolive.gui.fields import config_problem
from mesolive.gui.main_window import MainWindow
from mesolive.gui.presenter import Level, State
from tests.gui.conftest import parse

pytestmark = pytest.mark.gui

WAIT_MS = 60_000


def _type(qtbot, box, text: str, *, enter: bool = False) -> None:
    """Select what the field shows and type ``text`` over it, key by key (then Enter)."""
    box.setFocus()
    qtbot.waitUntil(box.hasFocus, timeout=2000)
    line = box.lineEdit() if hasattr(box, "lineEdit") else box
    line.selectAll()
    QTest.keyClicks(line, text)
    if enter:
        QTest.keyClick(line, Qt.Key.Key_Return)


def _leave(qtbot, window, box) -> None:
    """Move the keyboard elsewhere, as Tab or a click does (Qt corrects a field it leaves)."""
    window.controls.loop_files.setFocus()
    qtbot.waitUntil(lambda: not box.hasFocus(), timeout=2000)


def _activate(qtbot, window) -> None:
    """Shown, active (the keyboard goes to it) and on the Settings tab."""
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=2000)
    window.side.setCurrentIndex(1)


@pytest.fixture
def active(window, qtbot):
    _activate(qtbot, window)
    return window


def _window(qtbot, qsettings, *argv: str) -> MainWindow:
    win = MainWindow(parse(*argv), qsettings)
    qtbot.addWidget(win)
    _activate(qtbot, win)
    return win


# -- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["0.00", "1.00"])
def test_a_threshold_the_pipeline_refuses_is_explained_and_not_applied(active, qtbot, typed):
    c = active.controls
    _type(qtbot, c.threshold, typed)
    _leave(qtbot, active, c.threshold)
    assert c.threshold.text() == typed  # no silent revert: what was typed stays
    message = c.threshold_field.message
    assert message.isVisible()
    assert config_problem(threshold=float(typed)) in message.text()  # the pipeline's words
    assert "(0, 1)" in message.text() and "0.50 stays in force" in message.text()
    assert active.settings.threshold == 0.5 and active.presenter.threshold == 0.5
    assert active.config.pipeline_config().threshold == 0.5

    _type(qtbot, c.threshold, "0.01")  # the pipeline takes any value in (0, 1)
    assert not message.isVisible()
    assert active.settings.threshold == 0.5  # applied when typing is done
    QTest.keyClick(c.threshold, Qt.Key.Key_Return)
    assert active.settings.threshold == pytest.approx(0.01)
    assert active.presenter.threshold == pytest.approx(0.01)


def test_a_number_outside_the_box_is_kept_while_typed_then_explained(active, qtbot):
    c = active.controls
    _type(qtbot, c.threshold, "7")  # Qt alone would drop this keystroke without a word
    assert c.threshold.text() == "7"
    assert "'7' is not accepted: expected a value in (0, 1)" in c.threshold_field.message.text()
    assert active.settings.threshold == 0.5
    _leave(qtbot, active, c.threshold)
    assert c.threshold.text() == "0.50"  # Qt puts the value in force back, and the field says so
    assert c.threshold_field.message.isVisible()
    assert "'7' was not accepted" in c.threshold_field.message.text()
    assert "0.50 stays in force" in c.threshold_field.message.text()


@pytest.mark.parametrize(
    ("field", "typed", "accepts", "kept"),
    [
        ("every", "45", "1 to 30", "auto"),
        ("every", "-2", "1 to 30", "auto"),
        ("alert_seconds", "900", "0 to 600 s", "3.00 s"),
        ("alert_seconds", "soon", "0 to 600 s", "3.00 s"),
    ],
)
def test_other_fields_say_what_they_accept(active, qtbot, field, typed, accepts, kept):
    c = active.controls
    before = (active.settings.every, active.settings.alert_seconds)
    _type(qtbot, getattr(c, field), typed)
    checked = getattr(c, f"{field}_field")
    assert checked.message.isVisible() and accepts in checked.message.text()
    _leave(qtbot, active, getattr(c, field))
    assert "was not accepted" in checked.message.text()
    assert f"{kept} stays in force" in checked.message.text()
    active.config.save(active, active.splitter)
    assert (active.settings.every, active.settings.alert_seconds) == before
    assert not active.config.restart_timer.isActive()  # nothing changed: no restart either


def test_a_good_value_typed_is_applied_and_kept(active, qtbot, qsettings):
    c = active.controls
    _type(qtbot, c.alert_seconds, "7.5", enter=True)
    _type(qtbot, c.every, "3", enter=True)
    assert not c.alert_seconds_field.message.isVisible()
    assert not c.every_field.message.isVisible()
    assert active.presenter.alert_seconds == 7.5
    active.config.save(active, active.splitter)
    kept = ui_settings.load(QSettings(qsettings.fileName(), QSettings.Format.IniFormat))
    assert (kept.alert_seconds, kept.every) == (7.5, 3)


# -- the model folder -----------------------------------------------------------------------


@pytest.fixture
def no_model_dir(monkeypatch):
    """A user's machine: no MESOLIVE_MODEL_DIR (the tests' session sets one)."""
    monkeypatch.delenv("MESOLIVE_MODEL_DIR")


def _set_folder(qtbot, window, folder) -> None:
    _type(qtbot, window.controls.model_folder.edit, str(folder), enter=True)


def test_a_model_folder_is_checked_applied_and_kept(qtbot, qsettings, no_model_dir, shared):
    win = _window(qtbot, qsettings)
    field = win.controls.model_folder
    assert win.config.pipeline_config().model_dir is None
    _set_folder(qtbot, win, shared / "models")
    assert field.message.isVisible() and "used from the next start" in field.message.text()
    assert win.config.pipeline_config().model_dir == str(shared / "models")
    win.shutdown()
    again = MainWindow(parse(), QSettings(qsettings.fileName(), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    assert again.controls.model_folder.edit.text() == str(shared / "models")
    assert again.config.pipeline_config().model_dir == str(shared / "models")
    again.shutdown()


def test_a_folder_without_the_files_is_explained_and_not_applied(
    qtbot, qsettings, no_model_dir, shared, tmp_path
):
    win = _window(qtbot, qsettings)
    field = win.controls.model_folder
    _set_folder(qtbot, win, tmp_path / "nowhere")
    assert field.message.isVisible() and "no such folder" in field.message.text()
    _set_folder(qtbot, win, tmp_path)  # exists, but empty
    assert DYNAMIC_FILE in field.message.text()
    assert "no model folder is used" in field.message.text()
    assert win.config.pipeline_config().model_dir is None
    (tmp_path / DYNAMIC_FILE).symlink_to(shared / "models" / DYNAMIC_FILE)
    _set_folder(qtbot, win, tmp_path)  # the detector: enough for the default model
    assert win.config.pipeline_config().model_dir == str(tmp_path)
    c = win.controls
    c.arch.setCurrentIndex(c.arch.findData("meso4"))  # the authors' weights: not there
    assert "Meso4_DF.h5" in field.message.text()
    assert f"{tmp_path} stays in force" in field.message.text()
    win.shutdown()


def test_browse_picks_the_folder(qtbot, qsettings, no_model_dir, shared):
    win = _window(qtbot, qsettings)
    field = win.controls.model_folder
    qtbot.mouseClick(field.browse, Qt.MouseButton.LeftButton)
    dlg = field.dialog
    assert isinstance(dlg, QFileDialog) and dlg.isVisible()
    assert dlg.testOption(QFileDialog.Option.DontUseNativeDialog)
    dlg.setDirectory(str(shared))
    dlg.selectFile(str(shared / "models"))
    dlg.accept()
    assert field.dialog is None  # closed, and deleted by Qt
    assert field.edit.text() == str(shared / "models")
    assert win.config.pipeline_config().model_dir == str(shared / "models")
    win.shutdown()


@pytest.mark.parametrize("given", ["option", "variable"])
def test_a_model_folder_given_for_the_run_wins_and_is_not_kept(
    qtbot, qsettings, monkeypatch, shared, tmp_path, given
):
    monkeypatch.delenv("MESOLIVE_MODEL_DIR")
    ui_settings.save(qsettings, ui_settings.UiSettings(model_dir=str(tmp_path)))
    run = shared / "models"
    if given == "option":
        args = parse("--model-dir", str(run))
    else:
        monkeypatch.setenv("MESOLIVE_MODEL_DIR", str(run))
        args = parse()
    win = MainWindow(args, qsettings)
    qtbot.addWidget(win)
    field = win.controls.model_folder
    assert win.config.pipeline_config().model_dir == str(run)
    assert field.edit.text() == str(run) and not field.edit.isEnabled()
    assert not field.edit.isClearButtonEnabled()  # nothing offers to clear what cannot change
    assert ("--model-dir" if given == "option" else "MESOLIVE_MODEL_DIR") in field.message.text()
    win.shutdown()
    assert ui_settings.load(qsettings).model_dir == str(tmp_path)  # the kept one stays


def test_a_missing_detector_leads_to_the_model_folder(
    qtbot, qsettings, monkeypatch, no_model_dir, shared, tmp_path
):
    """Outside `make`: no model folder, no download; the banner leads to the field."""
    monkeypatch.setenv("MESOLIVE_CACHE_DIR", str(tmp_path / "cache"))  # no detector pack
    monkeypatch.setenv("MESOLIVE_OFFLINE", "1")  # and none downloaded
    win = _window(qtbot, qsettings)
    win.side.setCurrentIndex(0)
    win.start_source("test:?faces=1&frames=30&fps=30")
    qtbot.waitUntil(lambda: win.presenter.state is State.STOPPED, timeout=WAIT_MS)
    assert win.banner.level is Level.ERROR and win.banner.isVisible()
    assert win.banner.settings.isVisible() and not win.banner.action.isVisible()
    assert "buffalo_sc pack is not cached" in win.banner.label.text()
    assert "model folder" in win.video.placeholder
    qtbot.mouseClick(win.banner.settings, Qt.MouseButton.LeftButton)
    field = win.controls.model_folder
    assert win.side.currentWidget() is win.settings_scroll
    qtbot.waitUntil(field.edit.hasFocus, timeout=2000)
    QTest.keyClicks(field.edit, str(shared / "models"))
    QTest.keyClick(field.edit, Qt.Key.Key_Return)
    assert win.config.pipeline_config().model_dir == str(shared / "models")
    QTest.keyClick(field.edit, Qt.Key.Key_F5)  # the next start reads the folder
    qtbot.waitUntil(lambda: win.presenter.counters.results >= 3, timeout=WAIT_MS)
    assert not win.banner.isVisible()
    win.shutdown()


# -- shortcuts ------------------------------------------------------------------------------


@pytest.fixture
def pauses(active):
    """How many times the Space shortcut (pause) fired; enabled as while a session runs."""
    fired: list[bool] = []
    active.act_pause.setEnabled(True)
    active.act_pause.triggered.connect(lambda: fired.append(True))
    return fired


def test_space_pauses_when_no_field_has_the_keyboard(active, qtbot, pauses):
    active.video.setFocus()
    QTest.keyClick(active.video, Qt.Key.Key_Space)
    assert pauses == [True]


@pytest.mark.parametrize("field", ["threshold", "every", "alert_seconds", "model_folder"])
def test_keys_typed_into_a_field_stay_there(no_model_dir, active, qtbot, pauses, field):
    c = active.controls
    box = c.model_folder.edit if field == "model_folder" else getattr(c, field)
    _type(qtbot, box, "1 2")
    assert pauses == []
    if field == "model_folder":
        assert box.text() == "1 2"


def test_space_ticks_the_focused_check_box_not_pause(active, qtbot, pauses):
    box = active.controls.loop_files
    box.setFocus()
    qtbot.waitUntil(box.hasFocus, timeout=2000)
    QTest.keyClick(box, Qt.Key.Key_Space)
    assert box.isChecked() and pauses == []
    # a click on the video takes the keyboard back: Space pauses, the box stays ticked
    QTest.mouseClick(active.video, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(active.video.hasFocus, timeout=2000)
    QTest.keyClick(active.video, Qt.Key.Key_Space)
    assert box.isChecked() and pauses == [True]


def test_escape_leaves_the_field_and_the_shortcuts_work_again(active, qtbot, pauses):
    box = active.controls.threshold
    _type(qtbot, box, "0.4")
    QTest.keyClick(box, Qt.Key.Key_Escape)
    assert not box.hasFocus()
    assert active.settings.threshold == pytest.approx(0.4)  # Escape does not undo
    QTest.keyClick(active, Qt.Key.Key_Space)
    assert pauses == [True]
