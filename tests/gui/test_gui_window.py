"""The main window and its controls, offscreen: settings, model picker, pickers, alerts."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtWidgets import QMessageBox

from mesolive import __version__
from mesolive.gui import settings as ui_settings
from mesolive.gui.main_window import MainWindow
from mesolive.gui.presenter import Level
from mesolive.gui.session_status import backend_text
from mesolive.gui.source_picker import RegionPickerDialog, SourcePickerDialog
from mesolive.gui.tracks import Alert, TrackStore
from mesolive.models.registry import default_model
from tests.gui.conftest import make_face, make_result, parse

pytestmark = pytest.mark.gui


def test_window_has_the_controls_and_shortcuts(window):
    shortcuts = {a.text().replace("&", ""): a.shortcut().toString() for a in window.actions()}
    assert shortcuts["Choose source…"] == "Ctrl+O"
    assert shortcuts["Start"] == "F5"
    assert shortcuts["Pause"] == "Space"
    assert shortcuts["Stop"] == "Shift+F5"
    assert shortcuts["Save snapshot…"] == "Ctrl+S"
    assert shortcuts["Export session report…"] == "Ctrl+E"
    assert shortcuts["Overlay mode"] == "Ctrl+T"
    assert window.side.tabText(0) == "Faces" and window.side.tabText(1) == "Settings"
    assert window.video.result is None
    assert "Ctrl+O" in window.video.placeholder
    assert not window.act_pause.isEnabled() and not window.act_stop.isEnabled()
    assert window.act_start.isEnabled()


def test_model_picker_builds_model_names(window):
    c = window.controls
    default = default_model()
    assert c.models() == (default,)  # a fresh app runs the default model
    if ui_settings.split_models((default,)) is None:  # a model of its own: its own entry
        assert c.arch.currentData() == "default"
        assert all(cb.isHidden() for cb in c.variant_boxes.values())  # not "trained on DF"
    c.arch.setCurrentIndex(c.arch.findData("meso4"))
    assert c.models() == ("meso4-df",)
    assert not any(cb.isHidden() for cb in c.variant_boxes.values())
    c.variant_boxes["f2f"].setChecked(True)
    assert c.models() == ("meso4-df", "meso4-f2f")
    c.arch.setCurrentIndex(c.arch.findData("mesoinception4"))
    assert c.models() == ("mesoinception4-df", "mesoinception4-f2f")
    c.variant_boxes["df"].setChecked(False)
    c.variant_boxes["f2f"].setChecked(False)  # never none: DF comes back
    assert c.models() == ("mesoinception4-df",)
    if c.arch.findData("default") >= 0:  # back to the default: the authors' boxes go again
        c.arch.setCurrentIndex(c.arch.findData("default"))
        assert all(cb.isHidden() for cb in c.variant_boxes.values())


def test_settings_survive_a_restart(qtbot, qsettings):
    win = MainWindow(parse(), qsettings)
    qtbot.addWidget(win)
    c = win.controls
    c.arch.setCurrentIndex(c.arch.findData("meso4"))
    c.variant_boxes["f2f"].setChecked(True)
    c.threshold.setValue(0.65)
    c.every.setValue(3)
    c.det_size.setCurrentIndex(c.det_size.findData(480))
    c.alert_seconds.setValue(5.0)
    c.alert_sound.setChecked(True)
    win.settings.remember_source("screen:1")
    win.shutdown()

    again = MainWindow(parse(), QSettings(qsettings.fileName(), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    s = again.settings
    assert s.models == ("meso4-df", "meso4-f2f")
    assert s.threshold == pytest.approx(0.65)
    assert (s.every, s.det_size, s.alert_seconds, s.alert_sound) == (3, 480, 5.0, True)
    assert s.source == "screen:1" and s.recent_sources[0] == "screen:1"
    assert again.controls.threshold.value() == pytest.approx(0.65)
    again.shutdown()


def test_command_line_overrides_kept_settings(qtbot, qsettings):
    ui_settings.save(qsettings, ui_settings.UiSettings(every=4, threshold=0.7))
    win = MainWindow(parse("--models", "mesoinception4-f2f", "--every", "2"), qsettings)
    qtbot.addWidget(win)
    assert win.settings.models == ("mesoinception4-f2f",)
    assert win.settings.every == 2
    assert win.settings.threshold == pytest.approx(0.7)  # not given: the kept one
    assert win.controls.models() == ("mesoinception4-f2f",)
    win.shutdown()


def test_the_alert_time_from_the_command_line_reaches_the_pipeline(qtbot, qsettings):
    ui_settings.save(qsettings, ui_settings.UiSettings(alert_seconds=9.0))
    win = MainWindow(parse("--alert-seconds", "1.5"), qsettings)
    qtbot.addWidget(win)
    assert win.settings.alert_seconds == 1.5
    assert win.config.pipeline_config().alert_seconds == 1.5
    assert win.presenter.alert_seconds == 1.5
    win.controls.alert_seconds.setValue(4.0)  # the spin box goes the same way
    assert win.presenter.alert_seconds == 4.0
    win.shutdown()


def test_a_value_equal_to_the_default_still_wins_over_a_kept_one(qtbot, qsettings):
    ui_settings.save(qsettings, ui_settings.UiSettings(every=4, threshold=0.1))
    win = MainWindow(parse("--threshold", "0.5", "--every", "1"), qsettings)
    qtbot.addWidget(win)
    assert (win.settings.threshold, win.settings.every) == (pytest.approx(0.5), 1)
    win.shutdown()


def test_a_trained_model_is_kept_as_a_custom_choice(qtbot, qsettings):
    win = MainWindow(parse("--models", "my-finetuned,meso4-df"), qsettings)
    qtbot.addWidget(win)
    assert win.controls.models() == ("my-finetuned", "meso4-df")
    assert win.controls.arch.currentData() == "custom"
    win.shutdown()


def test_malformed_settings_fall_back_to_defaults(qsettings):
    qsettings.setValue("pipeline/threshold", "not a number")
    qsettings.setValue("pipeline/every", -3)
    qsettings.setValue("alert/sound", "yes")
    s = ui_settings.load(qsettings)
    assert s.threshold == 0.5 and s.every == 0 and s.alert_sound is True  # 0: auto


def test_users_who_never_picked_a_model_follow_the_default(qsettings):
    """Old settings kept the old default by name; a new default still reaches them."""
    qsettings.setValue("pipeline/models", ["meso4-df"])  # written before settings/version
    assert ui_settings.load(qsettings).models == (default_model(),)
    s = ui_settings.UiSettings()
    ui_settings.save(qsettings, s)
    assert qsettings.value("pipeline/models") in (None, "", [])  # "the default", by no name
    assert ui_settings.load(qsettings).models == (default_model(),)
    s.models = ("meso4-df", "meso4-f2f")  # a pick is kept by name
    ui_settings.save(qsettings, s)
    assert ui_settings.load(qsettings).models == ("meso4-df", "meso4-f2f")
    s.models = ("meso4-df",)
    ui_settings.save(qsettings, s)
    expected = (default_model(),) if default_model() == "meso4-df" else ("meso4-df",)
    assert ui_settings.load(qsettings).models == expected


@pytest.mark.parametrize(
    ("actual", "requested", "gpu", "warn"),
    [
        ("onnxruntime-cpu", "auto", False, False),  # no GPU here: CPU is the right choice
        ("onnxruntime-cpu", "auto", True, True),  # a GPU provider exists but CPU runs
        ("onnxruntime-cpu", "tensorrt", False, True),  # asked for TensorRT, got CPU
        ("tensorrt", "auto", True, False),
        ("onnxruntime-cuda", "onnxruntime-cuda", True, False),
        ("tensorrt+onnxruntime-cpu", "tensorrt", True, True),  # one model fell back
    ],
)
def test_a_backend_fallback_is_shown(actual, requested, gpu, warn):
    text, fallback = backend_text(actual, requested, gpu)
    assert fallback is warn
    assert ("fallback" in text) is warn
    assert ("CPU" in text) is ("onnxruntime-cpu" in actual)


def test_the_status_bar_names_every_runner_as_the_log_does() -> None:
    """It showed "openvino-cpu-bf16" beside "ONNX Runtime (CPU)"."""
    assert backend_text("openvino-cpu-bf16", "auto", False) == ("OpenVINO CPU bfloat16", False)
    assert backend_text("onnxruntime-cpu-int8", "auto", False)[0] == "ONNX Runtime CPU INT8"


def test_help_says_which_version_and_model_and_what_a_verdict_is_worth(window, qtbot):
    window.act_about.trigger()
    (box,) = [b for b in window.findChildren(QMessageBox) if b.windowTitle() == "About mesolive"]
    qtbot.waitUntil(box.isVisible, timeout=2000)
    text = box.text()
    assert text.startswith(f"mesolive {__version__}: a real-time deepfake detector")
    assert f"Default model: {default_model()} (" in text  # and why it is the default
    assert "research" in text  # its weights' licence
    assert "not proof" in text
    box.accept()


def test_source_picker_lists_sources_and_takes_a_uri(qtbot):
    dlg = SourcePickerDialog("", ["/tmp/some clip.mp4"])
    qtbot.addWidget(dlg)
    uris = [dlg.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(dlg.list.count())]
    assert "test:" in uris  # the demo source is always there
    assert "/tmp/some clip.mp4" in uris  # recent sources too
    test_row = uris.index("test:")
    dlg.list.setCurrentRow(test_row)
    assert dlg.uri() == "test:"
    dlg.uri_edit.setText("screen:2@0,0,10,10")
    assert dlg.selected_monitor() == 2


@pytest.mark.parametrize("current", ["/tmp/some clip.mp4", "rtsp://cam.local/1", "test:"])
def test_the_source_picker_opens_on_the_last_source(qtbot, current):
    """It opened on "screen:1" whatever the last source: OK captured the whole screen."""
    dlg = SourcePickerDialog(current, ["/tmp/some clip.mp4"])
    qtbot.addWidget(dlg)
    assert dlg.uri() == current
    item = dlg.list.currentItem()
    listed = current != "rtsp://cam.local/1"  # a recent file and the demo are listed
    assert (item.data(Qt.ItemDataRole.UserRole) if item else None) == (current if listed else None)
    dlg.refresh()
    assert dlg.uri() == current


def test_region_picker_turns_a_drag_into_a_screen_uri(qtbot):
    shot = np.zeros((1000, 1600, 3), np.uint8)
    dlg = RegionPickerDialog(1, shot)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    s = min(dlg.canvas.width() / 1600, dlg.canvas.height() / 1000)  # screenshot scaled to fit
    assert not dlg.ok_button.isEnabled()
    qtbot.mousePress(dlg.canvas, Qt.MouseButton.LeftButton, pos=QPoint(50, 40))
    qtbot.mouseMove(dlg.canvas, QPoint(250, 190))
    qtbot.mouseRelease(dlg.canvas, Qt.MouseButton.LeftButton, pos=QPoint(250, 190))
    assert dlg.ok_button.isEnabled()
    x, y, w, h = (round(v / s) for v in (50, 40, 200, 150))
    got = [int(v) for v in dlg.uri().split("@")[1].split(",")]
    assert dlg.uri().startswith("screen:1@")
    assert got == pytest.approx([x, y, w, h], abs=2)


def test_the_store_passes_on_each_alert_of_the_pipeline_once():
    """The pipeline decides alerts (tests/test_track.py); the store only passes them on."""
    store = TrackStore()
    alerts = []
    for i, count in enumerate([0, 0, 1, 1, 1, 2]):
        face = make_face(1, (0, 0, 10, 10), 0.9, alerts=count)
        alerts += store.update(make_result([face], index=i, t=i * 0.5, threshold=0.4))
    assert [(a.track_id, a.t) for a in alerts] == [(1, 1.0), (1, 2.5)]
    rec = store.tracks[1]
    assert rec.alerts == 2 and rec.alert_marks == [(1.0, 2), (2.5, 5)]
    assert len(rec.points) == 6
    assert store.threshold == 0.4  # the results' own, for the timeline


def test_alert_shows_a_banner(window):
    window.settings.alert_notify = False
    window.alerts.on_alert(Alert(track_id=4, t=3.0, seconds=3.0, running_score=0.81))
    assert window.alerts.banner.isVisible()
    assert "#4" in window.alerts.banner.label.text()
    assert "81%" in window.alerts.banner.label.text()


def test_a_session_without_a_result_has_no_report_to_export(window, tmp_path):
    """A source that never opened once gave a report with no track in it."""
    assert not window.export_report(str(tmp_path / "report"))
    assert window.statusBar().currentMessage() == "nothing to export yet"
    assert not (tmp_path / "report").exists()


def test_message_banner_offers_another_source(window):
    window.presenter._fail("webcam:0: cannot open camera 0")  # as a failed source does
    assert window.banner.isVisible() and window.banner.level is Level.ERROR
    assert window.banner.action.isVisible()
    assert "cannot open camera" in window.video.placeholder


def test_overlay_mode_refuses_a_file_source(window):
    window.presenter.uri = "/some/file.mp4"
    window.set_overlay_mode(True)
    assert not window.overlay.active
    assert not window.act_overlay.isChecked()
    assert "screen or window" in window.banner.label.text()


def test_the_window_keeps_itself_out_of_screen_captures(qtbot, qsettings):
    """Where it is goes to every screen grab (blacked out there), and nowhere once closed."""
    from mesolive.gui.main_window import MainWindow
    from mesolive.sources import screen
    from tests.gui.conftest import parse

    win = MainWindow(parse(), qsettings)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.move(40, 30)
    g = win.frameGeometry()
    qtbot.waitUntil(
        lambda: screen._own_windows == (screen.Region(g.x(), g.y(), g.width(), g.height()),)
    )
    win.close()
    assert screen._own_windows == ()
