"""Report export and snapshots from a real window, offscreen: written in a worker.

The heartbeat of the testing hooks (a 10 ms timer in the GUI thread) runs
while a report is exported; its largest gap is the longest stall. The bound
here is generous for a loaded machine; the target is 100 ms. A snapshot's
writer is told by the thread that logs its file.
"""

from __future__ import annotations

import csv
import json
import logging
import subprocess
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QLineEdit

from mesolive.gui.exporter import ExportOutcome
from mesolive.gui.hooks import Heartbeat
from mesolive.gui.presenter import Level, State
from mesolive.gui.video_view import render_annotated
from mesolive.types import FrameResult
from tests.gui.conftest import make_face, make_result
from tests.gui.test_gui_overlay import qimage_to_rgb

pytestmark = pytest.mark.gui

log = logging.getLogger(__name__)

WAIT_MS = 30_000  # model loading included; generous for a loaded CI machine
STALL_BOUND_S = 0.5
SOURCE = "test:?faces=3&fps=30&size=640x360"


def _local(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def _export(window, qtbot, folder) -> tuple[ExportOutcome, Heartbeat]:
    """Export with a heartbeat running; a second export meanwhile is refused."""
    hb = Heartbeat(10, window)
    hb.start()
    with qtbot.waitSignal(window.exporter.finished, timeout=WAIT_MS) as blocker:
        assert window.export_report(str(folder))
        assert window.statusBar().currentMessage() == "Exporting report…"
        assert not window.export_report(str(folder) + "-again")
        assert "still being written" in window.statusBar().currentMessage()
    hb.stop()
    log.info("export: %s", hb.gaps.summary())
    return blocker.args[0], hb


@pytest.mark.slow
def test_a_running_session_exports_its_report_without_stalling(window, qtbot, tmp_path):
    window.controls.every.setValue(2)
    assert window.start_source(SOURCE)
    started = window.presenter.counters.started
    qtbot.waitUntil(
        lambda: window.video.painted >= 10 and time.time() - started > 1.5, timeout=WAIT_MS
    )

    outcome, hb = _export(window, qtbot, tmp_path / "report")

    assert not outcome.error and outcome.folder == tmp_path / "report"
    out = outcome.paths
    assert set(out) == {"json", "csv", "png", "snapshot"}
    assert hb.gaps.max_gap < STALL_BOUND_S, hb.gaps.summary()
    assert window.statusBar().currentMessage() == f"Session report written to {tmp_path / 'report'}"
    report = json.loads(out["json"].read_text())
    assert report["session"]["source"] == SOURCE
    assert report["session"]["started"] == _local(started)  # not the export's time
    assert report["tracks"] and all(t["points"] for t in report["tracks"])
    with out["csv"].open() as f:
        assert len(list(csv.DictReader(f))) == sum(len(t["points"]) for t in report["tracks"])
    assert Image.open(out["png"]).size == (1200, 450)
    assert Image.open(out["snapshot"]).size == (640, 360)
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "snapshot.png",
        "timeline.csv",
        "timeline.json",
        "timeline.png",
    ]
    assert window.presenter.state is State.RUNNING
    window.stop()


@pytest.mark.slow
def test_an_unwritable_folder_is_one_message_and_the_session_goes_on(window, qtbot, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")  # a path under a file cannot be made, even as root
    assert window.start_source(SOURCE)
    qtbot.waitUntil(lambda: window.video.painted >= 5, timeout=WAIT_MS)

    outcome, _hb = _export(window, qtbot, blocker / "report")

    assert outcome.error and outcome.folder is None
    assert window.banner.isVisible() and window.banner.level is Level.ERROR
    assert window.banner.label.text() == outcome.error
    assert "a-file" in outcome.error
    assert window.statusBar().currentMessage() == ""  # no "Exporting report…" left behind
    dialogs = [w for w in QApplication.topLevelWidgets() if w.isVisible() and w is not window]
    assert not dialogs
    painted = window.video.painted
    qtbot.waitUntil(lambda: window.video.painted > painted + 5, timeout=WAIT_MS)
    assert window.presenter.state is State.RUNNING
    window.stop()


@pytest.mark.slow
def test_a_report_after_the_source_failed_holds_its_last_frame(window, qtbot, clip, tmp_path):
    """A clip cut short ends its session with the error in the frame's place; the
    session's report still holds the last frame analysed, as a report of a lost call would."""
    whole = tmp_path / "whole.mp4"  # the index first, so the cut file opens and ends early
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(clip), "-c", "copy", "-movflags", "+faststart",
         str(whole)],
        check=True,
    )  # fmt: skip
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 4])
    assert window.start_source(str(cut))
    qtbot.waitUntil(lambda: window.presenter.state is State.STOPPED, timeout=WAIT_MS)
    assert window.banner.level is Level.ERROR
    assert "file truncated or corrupt" in window.banner.label.text()
    assert window.video.result is None and window.video.last_result is not None

    outcome, _hb = _export(window, qtbot, tmp_path / "report")

    assert not outcome.error
    assert Image.open(outcome.paths["snapshot"]).size == (1280, 720)
    window.start_source(SOURCE)  # a new session forgets the last one's frame
    assert window.video.last_result is None or window.video.last_result.frame.source == SOURCE
    window.stop()


def test_a_long_sessions_export_never_stalls_the_window(window, qtbot, tmp_path):
    """Ten minutes of six faces analysed 10 times a second (36,000 points), fed by hand."""
    tracks = window.presenter.tracks
    result = None
    for i in range(6000):
        faces = [make_face(k, (40 * k, 0, 40 * k + 30, 30), 0.1 + 0.15 * k) for k in range(6)]
        result = make_result(faces, index=3 * i, t=i / 10, size=(320, 180))
        tracks.update(result)
    window.video.set_result(result)
    qtbot.wait(3 * window.timeline.REFRESH_MS)  # the side panel drew it, as while it ran

    outcome, hb = _export(window, qtbot, tmp_path / "long")

    assert not outcome.error
    report = json.loads(outcome.paths["json"].read_text())
    assert [len(t["points"]) for t in report["tracks"]] == [6000] * 6
    assert report["session"]["duration_s"] == pytest.approx(599.9)
    assert hb.gaps.max_gap < STALL_BOUND_S, hb.gaps.summary()


# -- snapshots -------------------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: list[tuple[str, int | None]] = []  # message, thread that logged it

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.getMessage(), record.thread))


@pytest.fixture
def exporter_log(caplog) -> Iterator[_Records]:
    """INFO lines of the exporter with their thread (a handler of its own: the CLI's
    logging setup stops propagation, so caplog alone may miss them)."""
    caplog.set_level(logging.INFO, logger="mesolive.gui.exporter")
    handler = _Records()
    logger = logging.getLogger("mesolive.gui.exporter")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def _show(window) -> FrameResult:
    """A 1280x720 frame with a fake and a real face, shown as while a session ran."""
    faces = [make_face(1, (400, 150, 560, 350), 0.9), make_face(2, (800, 200, 930, 370), 0.1)]
    result = make_result(faces, size=(1280, 720))
    window.video.set_result(result)
    return result


def test_a_snapshot_named_without_an_extension_is_saved_as_png(window, qtbot, tmp_path):
    """ "snap1" in the dialog was written as a file named snap1, which no viewer opens."""
    _show(window)

    def name_it() -> None:
        dlg = QApplication.activeModalWidget()
        assert isinstance(dlg, QFileDialog)
        dlg.setDirectory(str(tmp_path))
        dlg.findChild(QLineEdit, "fileNameEdit").setText("snap1")  # as the user typed it
        dlg.accept()

    QTimer.singleShot(300, name_it)
    with qtbot.waitSignal(window.exporter.snapshot_finished, timeout=WAIT_MS) as done:
        assert window.save_snapshot()
    assert done.args[0].paths == {"snapshot": tmp_path / "snap1.png"}
    assert Image.open(tmp_path / "snap1.png").format == "PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap1.png"]


def test_a_snapshot_is_written_by_a_worker_and_the_window_names_it(
    window, qtbot, tmp_path, exporter_log
):
    result = _show(window)
    path = tmp_path / "shots" / "now.png"  # its folder is made

    with qtbot.waitSignal(window.exporter.snapshot_finished, timeout=WAIT_MS) as done:
        assert window.save_snapshot(str(path))
        assert window.statusBar().currentMessage() == "Saving snapshot…"

    outcome = done.args[0]
    assert not outcome.error and outcome.paths == {"snapshot": path}
    assert window.statusBar().currentMessage() == f"Snapshot saved to {path}"
    writers = [t for msg, t in exporter_log.seen if msg == f"snapshot written to {path}"]
    assert len(writers) == 1 and writers[0] != threading.get_ident(), "the GUI thread wrote it"
    # the frame at full resolution with the screen's overlay, pixel for pixel (PNG)
    drawn = qimage_to_rgb(render_annotated(result, window.video.overlay, {}))
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), drawn)
    assert sorted(p.name for p in path.parent.iterdir()) == ["now.png"]  # no temporary left


def test_a_snapshot_that_cannot_be_written_is_one_message(window, qtbot, tmp_path):
    _show(window)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")  # a path under a file cannot be made, even as root

    with qtbot.waitSignal(window.exporter.snapshot_finished, timeout=WAIT_MS) as done:
        assert window.save_snapshot(str(blocker / "shot.png"))

    outcome = done.args[0]
    assert outcome.error.startswith("Could not write the snapshot: ") and "a-file" in outcome.error
    assert window.banner.isVisible() and window.banner.level is Level.ERROR
    assert window.banner.label.text() == outcome.error
    assert window.statusBar().currentMessage() == ""  # no "Saving snapshot…" left behind
    dialogs = [w for w in QApplication.topLevelWidgets() if w.isVisible() and w is not window]
    assert not dialogs
    with qtbot.waitSignal(window.exporter.snapshot_finished, timeout=WAIT_MS) as again:
        assert window.save_snapshot(str(tmp_path / "shot.png"))  # the next one works
    assert not again.args[0].error and (tmp_path / "shot.png").is_file()
