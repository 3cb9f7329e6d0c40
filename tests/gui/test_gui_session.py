"""Sessions driven by the real pipeline on the real 6-face clip, offscreen.

Pipeline results → presenter → video view + overlay + timeline + report; bad
and ending sources; pause; a model change while running; shutdown with no
thread left (the thread guard of tests/conftest.py checks every test).
"""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

from mesolive.detect.scrfd import DEFAULT_DET_SIZE
from mesolive.gui.overlay import GREY, face_colour
from mesolive.gui.presenter import Level, State
from mesolive.models.registry import default_model
from tests.gui.test_gui_overlay import box_edge_pixels, colour_share, qimage_to_rgb

pytestmark = [pytest.mark.gui, pytest.mark.slow]

WAIT_MS = 30_000  # model loading included; generous for a loaded CI machine


def _start(window, qtbot, uri: str, every: int = 3) -> None:
    window.controls.every.setValue(every)
    assert window.start_source(uri)
    qtbot.waitUntil(lambda: window.presenter.state is not State.STARTING, timeout=WAIT_MS)


def test_pipeline_results_reach_the_overlay_timeline_and_report(window, qtbot, clip, tmp_path):
    _start(window, qtbot, str(clip))
    assert window.presenter.state is State.RUNNING
    qtbot.waitUntil(lambda: window.video.painted >= 40, timeout=WAIT_MS)

    # the status bar names the back end that actually runs
    backend = window.presenter.backend
    assert backend.startswith(("onnxruntime", "openvino", "tensorrt"))
    assert window.status.backend_label.text()
    assert window.status.backend_label.text() not in ("back end: –", "loading models…")

    # freeze what is shown, then check it against the result it came from
    window.video.frozen = True
    qtbot.wait(100)
    result = window.video.result
    assert result is not None and result.backend == backend
    assert len(result.faces) >= 4, "the clip shows 6 faces"
    scored = [f for f in result.faces if f.n_scored > 0]
    assert scored, "faces are scored after 40 frames"
    rgb = qimage_to_rgb(window.video.grab().toImage())
    m = window.video.frame_to_view()
    for face in result.faces:
        x1, y1, x2, y2 = (float(v) for v in face.xyxy)
        xyxy = [x1 * m.scale + m.dx, y1 * m.scale + m.dy, x2 * m.scale + m.dx, y2 * m.scale + m.dy]
        if xyxy[0] < 2 or xyxy[2] > rgb.shape[1] - 2:
            continue  # a face leaving the frame: its edge is clipped
        colour = face_colour(face)
        share = colour_share(box_edge_pixels(rgb, xyxy), colour, tol=45)
        assert share > 0.6, f"track {face.track_id}: {share:.2f} of its edge in {colour.name()}"
        assert colour != GREY or face.n_scored < 5  # a verdict needs 5 scored frames
    window.video.frozen = False

    # side panel: a curve and a table row per track
    window.timeline.refresh(window.presenter.tracks)
    tracks = window.presenter.tracks.tracks
    assert len(tracks) >= 4
    assert window.timeline.table.rowCount() == len(tracks)
    assert set(window.timeline.curves) == set(tracks)
    window.status.update_stats()
    assert window.status.fps_label.text().endswith("fps")

    # session report and snapshot
    with qtbot.waitSignal(window.exporter.finished, timeout=WAIT_MS) as done:
        assert window.export_report(str(tmp_path / "report"))
    out = done.args[0].paths
    assert set(out) == {"json", "csv", "png", "snapshot"}
    report = json.loads(out["json"].read_text())
    assert report["session"]["backend"] == backend
    assert report["session"]["source"] == str(clip)
    assert report["session"]["det_size"] == DEFAULT_DET_SIZE  # "auto" as it ran, not null
    assert {t["track_id"] for t in report["tracks"]} == set(tracks)
    assert any(t["points"] for t in report["tracks"])
    point = next(t["points"][0] for t in report["tracks"] if t["points"])
    assert 0.0 <= point["fake_score"] <= 1.0 and default_model() in point["model_scores"]
    with out["csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(len(t["points"]) for t in report["tracks"])
    assert Image.open(out["png"]).size[0] > 500
    assert Image.open(out["snapshot"]).size == (1280, 720)

    window.stop()
    assert window.presenter.state is State.STOPPED


def test_a_bad_source_shows_a_message_and_another_can_be_picked(window, qtbot, clip, tmp_path):
    # malformed: refused at once
    assert not window.start_source("nosuchscheme:abc")
    assert window.banner.isVisible() and window.banner.level is Level.ERROR
    assert "unknown source scheme" in window.banner.label.text()
    assert window.presenter.state is State.STOPPED

    # well-formed but missing: said at once, before any model loads; the app stays up
    missing = tmp_path / "missing.mp4"
    assert not window.start_source(str(missing))
    assert window.presenter.state is State.STOPPED and window.presenter.backend == ""
    assert window.banner.level is Level.ERROR and window.banner.isVisible()
    assert "missing.mp4" in window.banner.label.text()
    assert window.banner.action.isVisible()  # "Choose another source…"

    # and the next source works
    _start(window, qtbot, str(clip))
    qtbot.waitUntil(lambda: window.video.painted >= 5, timeout=WAIT_MS)
    assert not window.banner.isVisible()
    window.stop()
    # what never opened is neither offered again nor the next start's source
    assert window.settings.recent_sources[0] == str(clip)
    assert str(missing) not in window.settings.recent_sources


def test_a_model_that_cannot_load_shows_a_message_not_a_dead_app(qtbot, qsettings, clip):
    from mesolive.gui.main_window import MainWindow
    from tests.gui.conftest import parse

    win = MainWindow(parse("--models", "no-such-model"), qsettings)
    qtbot.addWidget(win)
    win.show()
    assert win.start_source(str(clip))
    qtbot.waitUntil(lambda: win.presenter.state is State.STOPPED, timeout=WAIT_MS)
    assert win.banner.level is Level.ERROR and "no-such-model" in win.banner.label.text()
    assert not win.banner.action.isVisible()  # not the source's fault
    assert "Settings" in win.video.placeholder
    assert win.status.backend_label.text() == "back end: –"
    assert win.shutdown()


def test_a_source_that_ends_stops_the_session_with_a_message(window, qtbot):
    _start(window, qtbot, "test:?faces=2&frames=15&fps=30", every=1)
    qtbot.waitUntil(lambda: window.presenter.state is State.STOPPED, timeout=WAIT_MS)
    assert window.presenter.counters.results > 0
    assert window.banner.level is Level.INFO
    assert "F5" in window.banner.label.text()
    assert window.status.interval_label.text() == ""  # no interval of a session that ended


def test_a_paused_file_holds_its_place(window, qtbot):
    """It played on unseen and ended while paused; a resume found the session over."""
    _start(window, qtbot, "test:?faces=2&frames=60&fps=30", every=1)
    qtbot.waitUntil(lambda: window.presenter.counters.results >= 5, timeout=WAIT_MS)
    window.toggle_pause()
    capture = window.presenter._capture
    qtbot.wait(300)  # a frame already read may still land
    held = capture.frames_read
    assert held < 60
    qtbot.wait(2500)  # longer than the rest of the file takes to play
    assert window.presenter.state is State.PAUSED and capture.frames_read == held
    window.toggle_pause()
    qtbot.waitUntil(lambda: window.presenter.state is State.STOPPED, timeout=WAIT_MS)
    assert capture.frames_read == 60  # every frame, none skipped by the pause


def test_pause_resume_and_a_model_change_while_running(window, qtbot, clip):
    _start(window, qtbot, str(clip))
    qtbot.waitUntil(lambda: window.presenter.counters.results >= 5, timeout=WAIT_MS)
    window.toggle_pause()
    assert window.presenter.state is State.PAUSED
    qtbot.wait(200)  # a frame in flight may still land
    before = window.presenter.counters.results
    qtbot.wait(400)
    assert window.presenter.counters.results == before
    window.toggle_pause()
    assert window.presenter.state is State.RUNNING
    qtbot.waitUntil(lambda: window.presenter.counters.results > before, timeout=WAIT_MS)

    window.controls.arch.setCurrentIndex(window.controls.arch.findData("meso4"))
    window.controls.variant_boxes["f2f"].setChecked(True)  # restarts the pipeline (debounced)
    qtbot.waitUntil(
        lambda: (
            window.presenter.config.models == ("meso4-df", "meso4-f2f")
            and window.presenter.state is State.RUNNING
        ),
        timeout=WAIT_MS,
    )

    def both_scored() -> bool:
        r = window.presenter.latest
        return r is not None and any(
            set(f.model_scores) == {"meso4-df", "meso4-f2f"} for f in r.faces
        )

    qtbot.waitUntil(both_scored, timeout=WAIT_MS)


def test_a_threshold_change_reaches_the_running_pipelines_verdicts(window, qtbot, clip):
    """The spin box moves colours at once and the pipeline's verdict bands without a restart."""
    from mesolive.types import Verdict

    _start(window, qtbot, str(clip), every=1)

    def verdicts(allowed: set[Verdict]) -> bool:
        r = window.presenter.latest
        live = [f for f in r.faces if f.n_scored >= 5] if r is not None else []
        return bool(live) and {f.verdict for f in live} <= allowed

    qtbot.waitUntil(lambda: verdicts({Verdict.REAL}), timeout=WAIT_MS)  # the authors' net
    results = window.presenter.counters.results
    window.controls.threshold.setValue(0.05)  # below 0.05 - 0.1 nothing is "real"
    assert window.presenter.threshold == pytest.approx(0.05)
    qtbot.waitUntil(
        lambda: (
            window.presenter.counters.results > results + 3
            and verdicts({Verdict.UNCERTAIN, Verdict.FAKE})
        ),
        timeout=WAIT_MS,
    )
    assert window.presenter.state is State.RUNNING  # no restart


def test_closing_the_window_while_running_stops_every_thread(qtbot, qsettings, clip):
    from mesolive.gui.main_window import MainWindow
    from tests.gui.conftest import parse

    win = MainWindow(parse("--every", "3"), qsettings)
    qtbot.addWidget(win)
    win.show()
    _start(win, qtbot, str(clip))
    qtbot.waitUntil(lambda: win.video.painted >= 3, timeout=WAIT_MS)
    win.close()  # closeEvent: capture, then inference, then settings
    assert win.shutdown() is True
    assert qsettings.value("source/last") == str(clip)


def test_a_new_session_keeps_none_of_the_last_ones_track_summaries(window, qtbot, clip):
    """The stopped session's summaries arrive after the switch; the new report must not
    carry them (its track #1 once showed the old source's frames and verdict)."""
    _start(window, qtbot, str(clip))  # six faces
    qtbot.waitUntil(lambda: window.video.painted >= 10, timeout=WAIT_MS)
    _start(window, qtbot, "test:?faces=1")
    qtbot.wait(500)  # the old thread's queued summaries_ready is delivered by now
    assert window.presenter.summaries == []
    window.presenter.stop()
    qtbot.waitUntil(lambda: window.presenter.summaries != [], timeout=WAIT_MS)
    assert len(window.presenter.summaries) == 1  # this session's one face, kept after stop()


def test_looping_ticked_during_a_session_loops_the_running_file(window, qtbot, shared):
    """Ticking it once restarted the session (and its alerts); now the file loops on."""
    clip = shared / "videos" / "real" / "inthewild_obama.mp4"  # 49 frames
    window.controls.loop_files.setChecked(False)
    assert window.start_source(str(clip))
    qtbot.waitUntil(lambda: window.presenter.stats().frames_read >= 10, timeout=WAIT_MS)
    started = window.presenter.counters
    window.controls.loop_files.setChecked(True)
    qtbot.waitUntil(lambda: window.presenter.stats().frames_read > 100, timeout=WAIT_MS)
    assert window.presenter.state is State.RUNNING and window.presenter.counters is started
    window.controls.loop_files.setChecked(False)  # and it ends at the file's next end
    qtbot.waitUntil(lambda: window.presenter.state is State.STOPPED, timeout=WAIT_MS)
    assert window.presenter.counters is started and window.settings.loop_files is False
