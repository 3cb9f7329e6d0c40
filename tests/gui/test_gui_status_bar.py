"""The status bar in a narrow window, and a stream's password kept off the screen."""

from __future__ import annotations

import itertools

import pytest
from PySide6.QtCore import QEvent
from PySide6.QtGui import QHelpEvent
from PySide6.QtWidgets import QApplication, QLabel, QToolTip

from mesolive.gui.presenter import Level, State
from mesolive.gui.source_picker import SourcePickerDialog

pytestmark = [pytest.mark.gui, pytest.mark.slow]

WAIT_MS = 30_000  # model loading included


def test_a_narrow_window_shortens_the_status_bar_labels_instead_of_overlapping(window, qtbot, clip):
    """At the window's smallest size the labels were drawn over one another."""
    assert window.start_source(str(clip))
    qtbot.waitUntil(lambda: window.presenter.state is State.RUNNING, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.status.fps_label.text() != "– fps", timeout=WAIT_MS)
    bar = window.statusBar()
    window.resize(window.minimumSizeHint())
    qtbot.waitUntil(lambda: bar.width() <= window.minimumSizeHint().width(), timeout=5000)
    labels = [w for w in bar.findChildren(QLabel) if w.isVisible() and w.text()]
    assert len(labels) >= 6  # state, source, back end, fps, latency, drops (and interval)
    for a, b in itertools.combinations(labels, 2):
        assert not a.geometry().intersects(b.geometry()), (a.text(), b.text())
    assert all(bar.rect().contains(w.geometry()) for w in labels)
    source = window.status.source_label
    assert source.text() == str(clip) and "…" in source.shown_text()
    for label in (source, window.status.latency_label):  # the whole text on hover
        assert label.shown_text() != label.text()
        centre = label.rect().center()
        QApplication.sendEvent(
            label, QHelpEvent(QEvent.Type.ToolTip, centre, label.mapToGlobal(centre))
        )
        assert QToolTip.text() == label.text()
    # where an export went: it got no room beside the figures, so they give way while it shows
    figures = [window.status.fps_label, window.status.latency_label, window.status.drops_label]
    message = "report saved to /home/someone/Documents/mesolive/report-2026-12-04-091500.json"
    bar.showMessage(message, 10_000)
    assert not any(w.isVisible() for w in figures)
    bar.clearMessage()
    assert all(w.isVisible() for w in figures)
    bar.showMessage(message, 10_000)

    window.resize(1320, 800)  # room: every label whole, and the message beside them
    qtbot.waitUntil(lambda: all(w.isVisible() for w in figures), timeout=5000)
    bar.clearMessage()  # the source, hidden under the message, is whole
    qtbot.waitUntil(lambda: source.shown_text() == str(clip), timeout=5000)
    window.stop()


def test_a_password_in_a_stream_address_is_never_shown(window, qtbot):
    uri = "rtsp://viewer:s3cret@127.0.0.1:9/live?token=abc123"
    assert window.start_source(uri)
    qtbot.waitUntil(lambda: window.presenter.state is State.STOPPED, timeout=WAIT_MS)
    assert window.banner.level is Level.ERROR
    status = window.status.source_label
    shown = [
        status.text(),
        status.toolTip(),
        window.banner.label.text(),
        window.presenter.last_error,
        window.session_info().source,  # what reports and snapshots write
    ]
    assert "127.0.0.1:9" in status.text()
    assert not [s for s in shown if "s3cret" in s or "abc123" in s], shown

    window.settings.remember_source(uri)  # one that worked is offered again, and is the last
    picker = SourcePickerDialog(window.settings.source, window.settings.recent_sources, window)
    recent = [picker.list.item(i) for i in range(picker.list.count())]
    assert any("127.0.0.1:9" in item.text() for item in recent)
    assert not [item for item in recent if "s3cret" in item.text() or "abc123" in item.text()]
    field = picker.uri_edit
    assert "127.0.0.1:9" in field.text() and "s3cret" not in field.text()
    assert picker.uri() == uri  # what it opens: the password as given
    field.setText("webcam:0")
    picker.list.setCurrentRow(-1)
    picker.list.setCurrentItem(next(i for i in recent if "127.0.0.1:9" in i.text()))
    assert "s3cret" not in field.text() and picker.uri() == uri
    picker.close()
