"""Faces keep their identity in the window: folded tracks, gone faces, the timeline's legend.

A real :class:`TrackJudge` (the pipeline's judging stage, without the
networks) makes real ``FrameResult`` objects, ``merged`` included, exactly as
:class:`~mesolive.pipeline.pipeline.FramePipeline` does when the tracker
folds a young track into an earlier face; the real window shows them
offscreen. The last test runs the real pipeline on the six-face clip looped
three times.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from mesolive.gui.report import take_snapshot
from mesolive.gui.tracks import TrackSeries
from mesolive.track.judge import TrackJudge
from mesolive.track.smoothing import VerdictRule
from mesolive.types import Frame, FrameResult, StageTimings
from tests.conftest import MODELS
from tests.gui.conftest import CLIP, make_face

pytestmark = pytest.mark.gui

FPS = 10.0
BOXES = {
    1: (60.0, 100.0, 180.0, 250.0),
    2: (60.0, 100.0, 180.0, 250.0),  # face 1 come back: the same place
    3: (400.0, 100.0, 520.0, 250.0),
}


def _result(
    judge: TrackJudge,
    index: int,
    scores: dict[int, float],
    merged: tuple[tuple[int, int], ...] = (),
) -> FrameResult:
    """Frame ``index`` with a face per ``scores`` entry (track ID → fake score), judged."""
    image = np.full((360, 640, 3), 90, np.uint8)
    frame = Frame(index, image, 1000.0 + index / FPS, "test:", index / FPS)
    for young, earlier in merged:  # what FramePipeline does once the tracker folded a track
        judge.fold(young, earlier)
    faces = tuple(
        judge.face(
            tid,
            frame,
            np.array(BOXES[tid], np.float32),
            np.zeros((5, 2), np.float32),
            score,
            {"meso4-df": score},
            analysed=index + 1,
        )
        for tid, score in scores.items()
    )
    return FrameResult(
        frame,
        faces,
        StageTimings(),
        0.0,
        True,
        "onnxruntime-cpu",
        threshold=judge.rule.threshold,
        merged=merged,
    )


def _legend(panel) -> set[int]:
    """The track IDs the legend names (its text without the markup)."""
    return {int(n) for n in re.findall(r"#(\d+)", re.sub(r"<[^>]*>", "", panel.legend.text()))}


def _rows(window) -> list[str]:
    table = window.timeline.table
    return [table.item(r, 0).text() for r in range(table.rowCount())]


def test_a_folded_track_joins_the_earlier_face_with_its_points_and_alert(window, qtbot, tmp_path):
    window.settings.alert_notify = False
    judge = TrackJudge(VerdictRule(threshold=0.5, alert_seconds=1.0))
    raised = []
    window.presenter.alert_raised.connect(raised.append)
    # face 1 real for 2 s, away 2 s; back as young track 2, fake (an alert), for 3 s;
    # then the tracker sees it is face 1 and folds 2 into it. Face 3 stays throughout.
    plan = [{1: 0.1, 3: 0.2}] * 20 + [{3: 0.2}] * 20
    plan += [{2: 0.95, 3: 0.2}] * 30 + [{1: 0.95, 3: 0.2}] * 5
    for i, scores in enumerate(plan):
        merged = ((2, 1),) if i == 70 else ()
        result = _result(judge, i, scores, merged)
        window.presenter.take_result(result)
        if i == 69:  # before the fold: the young face is a row, face 1 is gone
            window.timeline.refresh(window.presenter.tracks)
            assert _rows(window) == ["#2", "#3"]
            assert window.timeline.show_gone.text() == "Show 1 earlier face"
            assert [r.track_id for r in window.alerts.history.records] == [2]
            assert "Face #2 " in window.alerts.history.records[0].message

    store = window.presenter.tracks
    face = result.faces[0]
    assert face.track_id == 1 and face.alerts == 1  # the pipeline moved the alert to face 1
    assert len(raised) == 1, "the fold raised the folded track's alert again"
    assert set(store.tracks) == {1, 3}
    rec = store.tracks[1]
    (summary,) = [s for s in judge.summaries(analysed=len(plan)) if s.track_id == 1]
    assert len(rec.points) == summary.n_scored == face.n_scored == 55  # every point once
    assert list(rec.points.t) == sorted(rec.points.t)
    assert rec.alerts == 1 and len(rec.alert_marks) == 1
    assert rec.first_seen == 0.0 and list(rec.recent)[-1] == pytest.approx(0.95)

    # the table, the timeline and its legend: face 1 continues, #2 is nowhere
    window.timeline.show_gone.setChecked(True)
    window.timeline.all_faces.setChecked(True)
    assert _rows(window) == ["#1", "#3"]
    assert set(window.timeline.curves) == {1, 3}
    assert _legend(window.timeline) == {1, 3}
    assert window.timeline.show_gone.text() == "Show 0 earlier faces"
    assert not window.timeline.show_gone.isChecked()  # no tick left on a box of nothing

    # the alert is face 1's now: history, panel, message
    (alert,) = window.alerts.history.records
    assert alert.track_id == 1 and alert.message.startswith("Face #1 looks forged")
    window.alerts.panel.refresh()
    assert window.alerts.panel.table.item(0, 0).text() == "#1"
    window.alerts.panel.table.setCurrentCell(0, 0)
    assert len(window.alerts.panel.curve.getData()[0]) > 0  # face 1's points around the alert

    # the report lists every track there is, the folded one inside face 1
    with qtbot.waitSignal(window.exporter.finished, timeout=20_000) as done:
        assert window.export_report(str(tmp_path / "report"))
    paths = done.args[0].paths
    report = json.loads(paths["json"].read_text())
    tracks = {t["track_id"]: t for t in report["tracks"]}
    assert set(tracks) == {1, 3}
    assert len(tracks[1]["points"]) == 55 and len(tracks[1]["alerts"]) == 1
    alerts = json.loads(paths["alerts_json"].read_text())["alerts"]
    assert [(a["track_id"], a["thumbnail"]) for a in alerts] == [(1, "alert-01-face1.png")]


def test_an_alert_clip_being_written_takes_the_id_its_face_is_folded_into(window, qtbot, tmp_path):
    window.settings.alert_notify = False
    folder = tmp_path / "clips"
    window.recording.set_alert_clips(True, 2.0, folder)
    judge = TrackJudge(VerdictRule(threshold=0.5, alert_seconds=1.0))
    # young track 2 (face 1 come back) alerts at about frame 54; its clip runs to about
    # frame 74; at frame 70, while it is written, the tracker folds 2 into 1
    plan = [{1: 0.1, 3: 0.2}] * 20 + [{3: 0.2}] * 20
    plan += [{2: 0.95, 3: 0.2}] * 30 + [{1: 0.95, 3: 0.2}] * 9
    for i, scores in enumerate(plan):
        window.presenter.take_result(_result(judge, i, scores, ((2, 1),) if i == 70 else ()))
        qtbot.wait(20)  # the recorder's pace: a full queue drops frames
        if i == 69:
            assert [r.track_id for r in window.alerts.history.records] == [2]
            (being_written,) = folder.iterdir()
            assert being_written.stem.endswith("-face2")

    events = window.recording.recorder.events
    qtbot.waitUntil(lambda: any(e.kind == "clip" for e in events), timeout=20_000)
    (clip,) = [e for e in events if e.kind.startswith("clip")]
    assert clip.kind == "clip" and clip.path is not None
    assert re.fullmatch(r"mesolive-alert-\d{8}-\d{6}-face1", clip.path.stem)
    assert clip.message == f"Alert clip saved to {clip.path}"
    assert list(folder.iterdir()) == [clip.path]  # renamed, not copied
    assert clip.frames >= 90  # 2 s before and after at 30 fps, frames repeated to pace


def test_gone_faces_fold_away_and_the_timeline_plots_current_faces(window):
    judge = TrackJudge(VerdictRule(threshold=0.5, alert_seconds=3.0))
    panel = window.timeline
    for i in range(60):  # face 1 leaves after 1 s; face 3 stays
        scores = {1: 0.2, 3: 0.7} if i < 10 else {3: 0.7}
        window.presenter.take_result(_result(judge, i, scores))
        panel.refresh(window.presenter.tracks)
        if i == 20:  # missing for 1.1 s: still current
            assert _rows(window) == ["#1", "#3"] and set(panel.curves) == {1, 3}
    assert _rows(window) == ["#3"]  # gone for 5 s: folded away
    assert set(panel.curves) == {3}
    assert _legend(panel) == {3}
    assert panel.show_gone.text() == "Show 1 earlier face" and panel.show_gone.isEnabled()

    panel.show_gone.setChecked(True)  # redraws at once, also while nothing comes
    assert _rows(window) == ["#3", "#1 (gone)"]
    gone = panel.table.item(1, 0).foreground().color()
    assert gone.lightness() > panel.table.item(0, 0).foreground().color().lightness()
    panel.all_faces.setChecked(True)
    assert set(panel.curves) == {1, 3} and _legend(panel) == {1, 3}
    panel.all_faces.setChecked(False)
    panel.show_gone.setChecked(False)
    assert set(panel.curves) == {3} and _rows(window) == ["#3"]

    # the legend is a line of its own, never on the plot
    window.side.setCurrentWidget(panel)
    legend = panel.legend.geometry()
    assert legend.height() > 0 and not legend.intersects(panel.plot.geometry())
    assert panel.plot.plotItem.legend is None


def test_absorbed_points_stay_in_time_order_with_every_model_column():
    a, b = TrackSeries(), TrackSeries()
    df = make_face(1, (0, 0, 10, 10), 0.2)
    both = make_face(2, (0, 0, 10, 10), 0.8)
    object.__setattr__(both, "model_scores", {"meso4-df": 0.8, "meso4-f2f": 0.6})
    for t in (0.0, 1.0, 3.0):
        a.append(t, int(t), df)
    for t in (2.0, 4.0):  # carried frames of both: the times interleave
        b.append(t, int(t), both)
    a.absorb(b)
    assert list(a.t) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert list(a.frame) == [0, 1, 2, 3, 4]
    assert list(a.fake) == pytest.approx([0.2, 0.2, 0.8, 0.2, 0.8])
    f2f = list(a.models["meso4-f2f"])
    assert [math.isnan(v) for v in f2f] == [True, True, False, True, False]
    assert a.since(2.5) == 3


@pytest.mark.slow
def test_a_looping_clip_ends_with_six_faces_in_the_table(window, qtbot, shared):
    """The six-face clip looped three times at every=3: six rows, no young ID anywhere."""
    from PySide6.QtWidgets import QApplication

    from mesolive.pipeline.pipeline import FramePipeline, PipelineConfig
    from mesolive.sources.registry import make_source
    from mesolive.types import ReadStatus

    path = shared / CLIP
    if not path.is_file():
        pytest.skip(f"missing {path}")
    source = make_source(str(path), loop=True)
    config = PipelineConfig(models=("meso4-df",), every=3, model_dir=str(MODELS))
    folded: dict[int, int] = {}
    last_seen: dict[int, float] = {}
    with FramePipeline(config) as pipeline, source:
        for _ in range(3 * 300):
            status, frame, message = source.read(5.0)
            assert status is ReadStatus.OK, message
            result = pipeline.process(frame)
            window.presenter.take_result(result)  # as the inference thread's results come
            folded.update(result.merged)
            for f in result.faces:
                last_seen[f.track_id] = frame.t_capture
            if result.analysed:
                QApplication.processEvents()  # paints, the panel's timer
        summaries = pipeline.summaries()
    window.timeline.refresh(window.presenter.tracks)

    faces = {s.track_id for s in summaries}
    assert folded, "the clip brings faces back under new IDs that the tracker folds"
    assert len(faces) == 6 and not faces & set(folded)
    store = window.presenter.tracks
    assert set(store.tracks) == faces  # the young IDs are gone from the store
    assert sum(len(r.points) for r in store.tracks.values()) == sum(s.n_scored for s in summaries)
    # a fold hands the young track's detection to the earlier face: seen at that frame too
    current = {t for t, seen in last_seen.items() if frame.t_capture - seen <= 2.0} - set(folded)
    assert {int(r.split()[0][1:]) for r in _rows(window)} == current
    window.timeline.show_gone.setChecked(True)
    rows = {int(r.split()[0][1:]) for r in _rows(window)}
    assert len(_rows(window)) == 6 and rows == faces
    assert set(window.timeline.curves) <= faces
    assert {r.track_id for r in window.alerts.history.records} <= faces
    assert {t.track_id for t in take_snapshot(window.session_info(), store).tracks} == faces
