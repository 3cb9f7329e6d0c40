"""A new session or quitting asks first when alerts would be lost: a real window, offscreen.

The alerts are real: the pipeline runs on the FaceForensics++ deepfake clip,
whose face scores about 0.95 from its first frames, with a 1 s alert time.
"""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

pytestmark = pytest.mark.gui

FAKE_CLIP = "videos/fake/ffpp_deepfakes_519_515.mp4"
WAIT_MS = 60_000


def _alerting(window, qtbot, shared):
    clip = shared / FAKE_CLIP
    if not clip.is_file():
        pytest.skip(f"missing {clip}")
    window.controls.alert_seconds.setValue(1.0)
    assert window.start_source(str(clip))
    qtbot.waitUntil(lambda: window.unexported.count >= 1, timeout=WAIT_MS)
    return str(clip)


def _answer(window, text: str) -> None:
    box = window.unexported.box
    assert isinstance(box, QMessageBox) and box.isVisible()
    (button,) = [b for b in box.buttons() if b.text() == text]
    button.click()


def test_a_new_source_asks_to_export_the_alerts_first(window, qtbot, shared, clip, tmp_path):
    fake = _alerting(window, qtbot, shared)

    window.open_source(str(clip))  # Cancel keeps the session and its alerts
    asked = window.unexported.box.text()
    assert "no exported report holds. Starting a new session discards" in asked
    _answer(window, "Cancel")
    assert window.presenter.uri == fake and window.presenter.running
    assert window.unexported.box is None and window.unexported.count >= 1

    def pick_folder() -> None:  # the folder dialog Export… opens
        dlg = QApplication.activeModalWidget()
        assert isinstance(dlg, QFileDialog)
        dlg.setDirectory(str(tmp_path))
        dlg.accept()

    window.open_source(str(clip))
    QTimer.singleShot(300, pick_folder)
    with qtbot.waitSignal(window.exporter.finished, timeout=WAIT_MS) as done:
        _answer(window, "Export…")
    assert not done.args[0].error
    (report,) = tmp_path.glob("mesolive-session-*")
    alerts = json.loads((report / "alerts.json").read_text())["alerts"]
    assert len(alerts) >= 1
    qtbot.waitUntil(lambda: window.presenter.uri == str(clip), timeout=WAIT_MS)  # then it went on
    assert window.unexported.count == 0  # a new session, nothing to lose yet

    window.close()  # nothing unexported: no question
    assert window.unexported.box is None and not window.isVisible()


def test_quitting_asks_and_discard_quits(window, qtbot, shared):
    _alerting(window, qtbot, shared)
    window.close()
    assert "Quitting discards" in window.unexported.box.text()
    assert window.isVisible() and window.presenter.running  # the session goes on behind it
    _answer(window, "Discard")
    assert not window.isVisible()  # closed: its threads are stopped


def test_a_quit_signal_does_not_ask(window, qtbot, shared):
    _alerting(window, qtbot, shared)
    window.close_now()  # what Ctrl+C in the terminal and SIGTERM do
    assert window.unexported.box is None and not window.isVisible()


def test_a_question_closed_without_an_answer_keeps_all_and_a_quit_signal_still_quits(
    window, qtbot, shared
):
    _alerting(window, qtbot, shared)
    window.close()
    window.unexported.box.close()  # its title bar's X, or Escape: as Cancel
    assert window.unexported.box is None and window.isVisible()
    assert window.statusBar().currentMessage() == "Nothing was discarded"
    window.close()  # asked again
    assert window.unexported.box is not None and window.isVisible()
    window.close_now()  # Ctrl+C in the terminal while it is open: no question
    assert window.unexported.box is None and not window.isVisible()


def test_quitting_while_a_report_of_every_alert_is_written_waits_for_it(
    window, qtbot, shared, tmp_path
):
    _alerting(window, qtbot, shared)
    window.stop()  # no new alert after the report
    with qtbot.waitSignal(window.exporter.finished, timeout=WAIT_MS) as done:
        assert window.export_report(str(tmp_path / "report"))
        window.close()
        assert window.unexported.box is None and window.isVisible()  # not asked: it is coming
    assert not done.args[0].error
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=WAIT_MS)
