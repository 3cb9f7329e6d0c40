"""One owner of "how fake": colour, label, table, alerts and reports never disagree.

A real :class:`TrackJudge` (the pipeline's judging stage, without the
networks) turns scores swept across every band into real ``FrameResult``
objects; the real window shows them offscreen. For every frame the box's
pixels, the label's word, the table, the alerts and, at points, the exported
report and ``scan --json`` are checked against each other.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtGui import QColor

from mesolive.commands.scan import InputReport, write_json
from mesolive.gui.overlay import AMBER, GREEN, GREY, RED, label_text
from mesolive.pipeline.pipeline import PipelineConfig
from mesolive.track.judge import TrackJudge
from mesolive.track.smoothing import VerdictRule
from mesolive.types import Frame, FrameResult, StageTimings
from tests.gui.test_gui_overlay import box_edge_pixels, colour_share, qimage_to_rgb

pytestmark = pytest.mark.gui

FPS = 10.0
BOX = (200.0, 100.0, 320.0, 250.0)  # frame pixels of a 640x360 frame
#: The colour each label word must come with: the word is read, the colour is seen.
WORD_COLOURS = {"real": GREEN, "uncertain": AMBER, "FAKE": RED, "unknown": GREY}

# Scores through every band: up to fake and held (an alert), down through
# uncertain to real, up again (a second alert); then a threshold change.
SWEEP = (
    list(np.linspace(0.05, 0.95, 12))
    + [0.95] * 22
    + [0.45] * 12
    + [0.05] * 14
    + [0.9] * 22
    + [0.45] * 10
)
THRESHOLD_CHANGE_AT = len(SWEEP) - 6  # while 0.45 is "uncertain" at 0.5


def _result(judge: TrackJudge, index: int, score: float) -> FrameResult:
    image = np.full((360, 640, 3), 90, np.uint8)
    frame = Frame(index, image, 1000.0 + index / FPS, "test:", index / FPS)
    face = judge.face(
        1,
        frame,
        np.array(BOX, np.float32),
        np.zeros((5, 2), np.float32),
        float(score),
        {"meso4-df": float(score)},
        analysed=index + 1,
    )
    return FrameResult(
        frame, (face,), StageTimings(), 0.0, True, "onnxruntime-cpu", threshold=judge.rule.threshold
    )


def _box_colour_share(window, colour: QColor) -> float:
    rgb = qimage_to_rgb(window.video.grab().toImage())
    m = window.video.frame_to_view()
    x1, y1, x2, y2 = BOX
    on_view = [x1 * m.scale + m.dx, y1 * m.scale + m.dy, x2 * m.scale + m.dx, y2 * m.scale + m.dy]
    return colour_share(box_edge_pixels(rgb, on_view), colour, tol=45)


def _export(window, qtbot, folder) -> dict:
    with qtbot.waitSignal(window.exporter.finished, timeout=20_000) as done:
        assert window.export_report(str(folder))
    return json.loads(done.args[0].paths["json"].read_text())


def test_colour_label_table_alerts_and_reports_never_disagree(window, qtbot, tmp_path):
    window.settings.alert_notify = False
    window.settings.alert_seconds = 1.0
    judge = TrackJudge(VerdictRule(threshold=window.presenter.threshold, alert_seconds=1.0))
    alerts = []
    window.presenter.alert_raised.connect(alerts.append)
    words_seen = set()
    exports = 0

    for i, score in enumerate(SWEEP):
        if i == THRESHOLD_CHANGE_AT:
            shown = window.video.result
            window.controls.threshold.setValue(0.3)
            # Nothing drawn moves before a result judged with the new threshold comes:
            # box and label still agree, as the timeline's threshold line does.
            assert window.video.result is shown and shown.threshold == 0.5
            word = label_text(shown.faces[0]).split()[1]
            assert _box_colour_share(window, WORD_COLOURS[word]) > 0.6
            assert window.timeline.threshold_line.value() == pytest.approx(0.5)
            # the inference thread's step: hand the pipeline what the presenter asks for
            judge.set_rule(replace(judge.rule, threshold=window.presenter.threshold))

        result = _result(judge, i, score)
        window.presenter.take_result(result)
        face = result.faces[0]
        label = label_text(face)
        word = label.split()[1]
        words_seen.add(word)

        # the box's pixels are the colour of the word its label spells
        share = _box_colour_share(window, WORD_COLOURS[word])
        assert share > 0.6, f"frame {i}: {label} drawn in another colour ({share:.2f})"

        # the table says the same word, on the same colour; the timeline's line is the result's
        window.timeline.refresh(window.presenter.tracks)
        cell = window.timeline.table.item(0, 5)
        assert cell.text() == word
        assert cell.background().color() == WORD_COLOURS[word].lighter(130)
        assert window.timeline.threshold_line.value() == pytest.approx(result.threshold)

        # alerts: one per stay in FAKE of the alert time, raised while the label says FAKE
        assert len(alerts) == face.alerts
        if alerts and alerts[-1].t == pytest.approx(window.presenter.tracks.t_last):
            assert word == "FAKE" and face.fake_for >= 1.0 - 1e-6
            assert window.alerts.banner.isVisible()
            assert "#1" in window.alerts.banner.label.text()

        # the GUI report says what the label says, at a few points of the sweep
        if i in (20, 40, 70, len(SWEEP) - 1):
            report = _export(window, qtbot, tmp_path / f"report-{i}")
            exports += 1
            (track,) = report["tracks"]
            assert report["session"]["threshold"] == pytest.approx(result.threshold)
            assert track["last_verdict"] == face.verdict.value
            assert track["verdict"] == face.track_verdict.value
            assert len(track["alerts"]) == face.alerts

    assert exports == 4
    assert words_seen == set(WORD_COLOURS), "the sweep went through every band"
    assert len(alerts) == 2
    assert word == "FAKE" and result.threshold == pytest.approx(0.3)  # 0.45 > 0.3 + 0.1

    # `scan --json` reports the same alerts and the same last call
    scan_json = tmp_path / "scan.json"
    summaries = judge.summaries(analysed=len(SWEEP))
    write_json(
        str(scan_json),
        PipelineConfig(models=("meso4-df",)),
        "x",
        [InputReport("test:", frames=len(SWEEP), analysed=len(SWEEP), tracks=summaries)],
    )
    (scanned,) = json.loads(scan_json.read_text())["inputs"][0]["tracks"]
    assert scanned["last_verdict"] == face.verdict.value
    assert scanned["verdict"] == face.track_verdict.value
    assert [a["frame"] for a in scanned["alerts"]] == [
        frame for _t, frame in window.presenter.tracks.tracks[1].alert_marks
    ]
