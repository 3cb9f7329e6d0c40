"""Alert history: each alert's time, face, peak and duration; its timeline; the report.

The history is fed as the window feeds it: an alert, then the result that
raised it, then every result after. The end-to-end test runs the real
pipeline on the FaceForensics++ deepfake clip, whose face scores about 0.95
from its first frames, with a 1 s alert time.
"""

from __future__ import annotations

import csv
import dataclasses
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from mesolive.gui.alert_history import THUMB_SIZE, AlertHistory, face_thumbnail
from mesolive.gui.alert_panel import AlertPanel
from mesolive.gui.presenter import State
from mesolive.gui.tracks import Alert, TrackStore
from mesolive.types import Frame, Verdict
from tests.gui.conftest import make_face, make_result

pytestmark = pytest.mark.gui

FAKE_CLIP = "videos/fake/ffpp_deepfakes_519_515.mp4"  # 640x480, one face, fake from the start
WAIT_MS = 60_000
BOX = (400.0, 150.0, 560.0, 350.0)


@pytest.fixture(scope="module")
def image(shared) -> np.ndarray:
    cap = cv2.VideoCapture(str(shared / "videos/synthetic/group_pan_720p30.mp4"))
    ok, img = cap.read()
    cap.release()
    if not ok:
        pytest.skip("the 720p clip could not be read")
    return img


def result(image, t: float, faces):
    r = make_result(faces, index=round(30 * t), t=t)
    return dataclasses.replace(r, frame=Frame(r.frame.index, image, 1000.0 + t, "clip"))


def test_an_alert_is_followed_until_the_face_is_no_longer_fake(image):
    hist = AlertHistory()
    hist.add_result(result(image, 0.5, [make_face(1, BOX, 0.9)]))  # before any alert
    assert hist.records == []

    # the alert reaches the window before the result that raised it (face fake since t=1)
    hist.add_alert(Alert(track_id=1, t=4.0, seconds=3.0, running_score=0.8))
    hist.add_result(result(image, 4.0, [make_face(1, BOX, 0.8), make_face(2, BOX, 0.2)]))
    for t, score in ((5.0, 0.95), (6.0, 0.7)):
        hist.add_result(result(image, t, [make_face(1, BOX, score)]))
    (rec,) = hist.records
    assert (rec.number, rec.track_id, rec.t, rec.t_start) == (1, 1, 4.0, 1.0)
    assert rec.ended == "" and rec.t_end == 6.0 and rec.peak == pytest.approx(0.95)

    hist.add_result(result(image, 7.0, [make_face(1, BOX, 0.3, verdict=Verdict.UNCERTAIN)]))
    hist.add_result(result(image, 8.0, [make_face(1, BOX, 0.99)]))  # a new stay, not this alert
    (rec,) = hist.records
    assert rec.ended == "below" and rec.t_end == 7.0 and rec.duration == pytest.approx(6.0)
    assert rec.peak == pytest.approx(0.95)

    # the thumbnail: the face box with a margin, longest side THUMB_SIZE, read-only
    assert rec.thumbnail is not None and not rec.thumbnail.flags.writeable
    assert rec.thumbnail.shape == (THUMB_SIZE, round(THUMB_SIZE * 225 / 265), 3)
    assert np.array_equal(rec.thumbnail, face_thumbnail(image, np.array(BOX)))
    crop = image[110:391, 368:593]  # BOX grown by a fifth of its longest side each way
    assert abs(float(rec.thumbnail.mean()) - float(crop.mean())) < 3


def test_an_alert_ends_when_its_face_is_lost_or_the_session_ends(image):
    hist = AlertHistory(lost_after=2.0)
    hist.add_alert(Alert(1, 3.0, 3.0, 0.9))
    hist.add_alert(Alert(2, 3.0, 3.0, 0.9))
    hist.add_result(result(image, 3.0, [make_face(1, BOX, 0.9), make_face(2, BOX, 0.9)]))
    for t in (4.0, 5.0, 6.0):  # face 2 is not seen after t=3
        hist.add_result(result(image, t, [make_face(1, BOX, 0.9)]))
    one, two = hist.records
    assert one.ended == "" and two.ended == "lost" and two.t_end == 3.0
    hist.finish()
    one, two = hist.records
    assert one.ended == "session ended" and one.t_end == 6.0 and two.ended == "lost"
    version = hist.version
    hist.clear()
    assert hist.records == [] and hist.version > version


def test_clicking_an_alert_shows_its_faces_timeline_until_a_new_session(qtbot, image):
    store, hist = TrackStore(), AlertHistory()
    panel = AlertPanel(hist, store)
    qtbot.addWidget(panel)
    assert not any(item.isVisible() for item in panel.marks)  # nothing to mark yet
    for i in range(100):  # 10 results a second; face 1 alerts at t=4 and is real from t=7
        t = i / 10
        score = 0.9 if 1.0 <= t < 7.0 else 0.2
        faces = [make_face(1, BOX, score, alerts=int(t >= 4.0)), make_face(2, BOX, 0.1)]
        r = result(image, t, faces)
        for alert in store.update(r):
            hist.add_alert(alert)
        hist.add_result(r)
    panel.refresh()
    assert panel.table.rowCount() == 1
    assert [panel.table.item(0, c).text() for c in range(4)] == ["#1", "0:04", "90%", "3.0 s"]
    assert panel.caption.text() == "Click an alert in the list to plot its face's timeline."

    panel.table.setCurrentCell(0, 2)  # a click on the row
    xs, ys = panel.curve.getData()
    assert xs[0] == pytest.approx(0.0) and xs[-1] == pytest.approx(9.9)  # t_start-10 … t_end+10
    assert float(ys.max()) == pytest.approx(0.9) and float(ys.min()) == pytest.approx(0.2)
    assert panel.stay.getRegion() == pytest.approx((4.0, 7.0))
    assert all(item.isVisible() for item in panel.marks)
    assert panel.caption.text().startswith("Alert 1: face #1 at 0:04, peak 90%")

    hist.clear()  # a new session
    panel.refresh()
    assert panel.table.rowCount() == 0 and panel.selected is None
    assert panel.caption.text() == "No alert yet."
    assert not any(item.isVisible() for item in panel.marks)  # the last session's, gone


def test_the_clip_option_is_off_by_default_and_follows_the_panel(window, qtbot, tmp_path):
    panel = window.alerts.panel
    assert not panel.clips.isChecked() and window.recording.recorder.clip_folder is None
    window.recording.folder = tmp_path  # as if asked already this run (no dialog)
    with qtbot.waitSignal(panel.clips_changed) as on:
        panel.clips.setChecked(True)
    assert on.args == [True, 5.0] and window.recording.recorder.clip_folder == tmp_path
    with qtbot.waitSignal(panel.clips_changed) as longer:
        panel.clip_seconds.setValue(2.0)
    assert longer.args == [True, 2.0]
    with qtbot.waitSignal(panel.clips_changed) as off:
        panel.clips.setChecked(False)
    assert off.args == [False, 2.0] and window.recording.recorder.clip_folder is None
    with qtbot.assertNotEmitted(panel.clips_changed):
        panel.clip_seconds.setValue(3.0)  # while off: nothing to change
    # nothing is left on the disk (the worker's write check makes and removes a probe)
    qtbot.waitUntil(lambda: list(tmp_path.iterdir()) == [], timeout=5000)


@pytest.mark.slow
def test_alerts_of_a_deepfake_reach_the_list_timeline_clip_and_report(
    window, qtbot, shared, tmp_path
):
    clip = shared / FAKE_CLIP
    if not clip.is_file():
        pytest.skip(f"missing {clip}")
    window.controls.alert_seconds.setValue(1.0)
    window.controls.every.setValue(2)
    window.recording.set_alert_clips(True, 1.0, tmp_path / "clips")
    assert window.start_source(str(clip))
    panel = window.alerts.panel
    qtbot.waitUntil(lambda: panel.table.rowCount() >= 1, timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: any(e.kind == "clip" for e in window.recording.recorder.events), timeout=WAIT_MS
    )
    window.stop()
    assert window.presenter.state is State.STOPPED
    panel.refresh()

    rec = window.alerts.history.records[0]
    store = window.presenter.tracks
    assert rec.track_id in store.tracks and store.tracks[rec.track_id].alerts >= 1
    assert rec.ended in ("session ended", "below", "lost")
    assert rec.peak >= 0.5 and rec.duration >= 1.0
    assert panel.table.rowCount() == len(window.alerts.history.records)
    assert panel.table.item(0, 0).text() == f"#{rec.track_id}"
    assert not panel.table.item(0, 0).icon().isNull()  # the thumbnail

    # clicking the row shows that face's timeline around the alert
    panel.table.setCurrentCell(0, 1)
    assert panel.selected == 1
    assert panel.caption.text().startswith(f"Alert 1: face #{rec.track_id}")
    xs, ys = panel.curve.getData()
    assert xs is not None and len(xs) > 5
    assert xs[0] >= rec.t_start - panel.margin and xs[-1] <= rec.t_end + panel.margin
    after = ys[(xs >= rec.t) & (xs <= rec.t_end)]  # the points the peak was taken over
    assert len(after) and float(np.max(after)) >= rec.peak - 1e-6
    assert panel.stay.getRegion() == pytest.approx((rec.t_start, rec.t_end))

    # the clip around it plays
    clip_event = next(e for e in window.recording.recorder.events if e.kind == "clip")
    cap = cv2.VideoCapture(str(clip_event.path))
    assert cap.read()[0] and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == clip_event.frames
    cap.release()

    # and the report carries the alerts
    with qtbot.waitSignal(window.exporter.finished, timeout=WAIT_MS) as done:
        assert window.export_report(str(tmp_path / "report"))
    out = done.args[0].paths
    alerts = json.loads(out["alerts_json"].read_text())["alerts"]
    assert len(alerts) == len(window.alerts.history.records)
    first = alerts[0]
    assert first["track_id"] == rec.track_id and first["peak"] == pytest.approx(rec.peak, abs=1e-5)
    assert first["duration_s"] == pytest.approx(rec.duration, abs=1e-3)
    assert Image.open(out["alert_1"]).size == rec.thumbnail.shape[1::-1]
    assert out["alert_1"].name == first["thumbnail"]
    with out["alerts_csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["track_id"]) for r in rows] == [a["track_id"] for a in alerts]
