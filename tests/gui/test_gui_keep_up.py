"""The "auto" analysis interval in the app: the real pipeline, a source faster than it.

``test:`` at 240 fps delivers a frame every 4 ms; no CPU detects and classifies
twelve faces that fast, so frames are dropped until the interval goes up, and
the status bar says so. A number given on the command line wins over auto.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from mesolive.gui import settings as ui_settings
from mesolive.gui.main_window import MainWindow
from mesolive.gui.presenter import State
from mesolive.pipeline.interval import Interval
from tests.gui.conftest import parse

pytestmark = [pytest.mark.gui, pytest.mark.slow]

WAIT_MS = 30_000  # model loading included
FAST = "test:?faces=12&size=640x360&fps=240"


def test_auto_raises_the_interval_to_keep_up_and_says_so(window, qtbot):
    assert window.settings.every == 0 and window.controls.every.text() == "auto"
    analysed: list[bool] = []
    window.presenter.result_ready.connect(lambda r: analysed.append(r.analysed))
    assert window.start_source(FAST)
    assert window.status.interval_label.text() == "analysing every frame (auto)"
    qtbot.waitUntil(lambda: window.presenter.state is State.RUNNING, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.presenter.interval.every > 1, timeout=WAIT_MS)
    interval = window.presenter.interval
    assert interval.auto and interval.reason.startswith("falling behind: latency ")
    assert window.status.interval_label.text() == interval.text
    assert window.status.interval_label.text().endswith("frame to keep up")
    assert window.status.interval_label.toolTip() == interval.reason
    # the running pipeline follows: frames in between are now carried, not analysed
    seen = len(analysed)
    qtbot.waitUntil(lambda: len(analysed) >= seen + 3 * interval.every, timeout=WAIT_MS)
    assert not all(analysed[seen:])


def test_a_number_on_the_command_line_wins_over_auto(qtbot, qsettings):
    ui_settings.save(qsettings, ui_settings.UiSettings(every=0))  # auto kept
    win = MainWindow(parse("--every", "3"), qsettings)
    qtbot.addWidget(win)
    try:
        assert win.settings.every == 3 and win.controls.every.value() == 3
        assert win.start_source(FAST)
        assert win.presenter.interval == Interval(3, auto=False)
        assert win.status.interval_label.text() == "analysing every 3rd frame"
        qtbot.waitUntil(lambda: win.presenter.state is State.RUNNING, timeout=WAIT_MS)
        qtbot.wait(2500)  # two windows of the controller, were it running
        assert win.presenter.interval == Interval(3, auto=False)
    finally:
        assert win.shutdown()


def test_auto_on_the_command_line_wins_over_a_kept_number(qtbot, qsettings):
    ui_settings.save(qsettings, ui_settings.UiSettings(every=4))
    win = MainWindow(parse("--every", "auto"), qsettings)
    qtbot.addWidget(win)
    assert win.settings.every == 0 and win.controls.every.text() == "auto"
    win.shutdown()
    again = QSettings(qsettings.fileName(), QSettings.Format.IniFormat)
    assert ui_settings.load(again).every == 0  # kept as auto


def test_an_interval_of_1_kept_before_auto_existed_is_read_as_auto(qsettings):
    qsettings.setValue("settings/version", 2)
    qsettings.setValue("pipeline/every", 1)
    assert ui_settings.load(qsettings).every == 0
    qsettings.setValue("settings/version", 3)  # kept since: a choice
    assert ui_settings.load(qsettings).every == 1
