"""Track IDs, running scores, verdict hysteresis, the paper's summary rule, alerts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mesolive.track.iou_tracker import IouTracker, greedy_match, iou_matrix
from mesolive.track.judge import TrackJudge
from mesolive.track.smoothing import RunningScore, Timeline, VerdictRule, wilson_interval
from mesolive.types import (
    FaceDetections,
    FaceResult,
    Frame,
    FrameResult,
    StageTimings,
    Verdict,
)


def dets(*boxes: tuple[float, float, float, float]) -> FaceDetections:
    xyxy = np.array(boxes, np.float32).reshape(-1, 4)
    cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2
    kps = np.repeat(np.stack([cx, cy], axis=1)[:, None, :], 5, axis=1)
    return FaceDetections(xyxy, np.ones(len(xyxy), np.float32), kps.astype(np.float32))


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], np.float32)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    got = iou_matrix(a, b)
    np.testing.assert_allclose(got[0], [50 / 150, 1.0, 0.0])
    np.testing.assert_allclose(got[1], [0, 0, 0])  # an empty box overlaps nothing
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


def test_greedy_match_takes_the_best_pairs_first() -> None:
    iou = np.array([[0.9, 0.5], [0.8, 0.1]])
    assert sorted(greedy_match(iou, 0.3)) == [(0, 0)]
    assert greedy_match(iou, 0.05) == [(0, 0), (1, 1)]
    assert greedy_match(np.zeros((0, 2)), 0.3) == []


def test_ids_are_stable_and_new_faces_get_new_ids() -> None:
    t = IouTracker()
    first = t.update(dets((0, 0, 50, 50), (100, 0, 150, 50)), 0)
    assert [tr.track_id for tr, _ in first] == [1, 2]
    # Same faces, listed in the other order and moved a little, plus a newcomer:
    # tentative (ID 0) until its second detection in a row.
    second = t.update(dets((104, 2, 154, 52), (300, 0, 350, 50), (3, 1, 53, 51)), 1)
    assert [(tr.track_id, i) for tr, i in second] == [(2, 0), (0, 1), (1, 2)]
    third = t.update(dets((6, 2, 56, 52), (302, 0, 352, 50), (108, 4, 158, 54)), 2)
    assert [(tr.track_id, i) for tr, i in third] == [(1, 0), (3, 1), (2, 2)]
    assert [tr.track_id for tr in t.visible()] == [1, 2, 3]


def test_a_one_frame_detection_never_becomes_a_face() -> None:
    t = IouTracker()
    t.update(dets((0, 0, 50, 50)), 0)
    flash = t.update(dets((3, 0, 53, 50), (300, 0, 350, 50)), 3)  # a patch of background
    assert [tr.track_id for tr, _ in flash] == [1, 0]
    assert [tr.track_id for tr in t.visible()] == [1]  # nothing shows it between frames
    t.update(dets((6, 0, 56, 50)), 6)  # gone at the next analysed frame: it ends
    assert [tr.track_id for tr in t.tracks] == [1]
    late = t.update(dets((9, 0, 59, 50), (300, 0, 350, 50)), 9)  # back: a new first sighting
    assert [tr.track_id for tr, _ in late] == [1, 0]
    assert [tr.track_id for tr, _ in t.update(dets((302, 0, 352, 50)), 12)] == [2]


def test_every_face_of_an_input_s_first_frame_has_its_id_at_once() -> None:
    t = IouTracker()
    assert [tr.track_id for tr, _ in t.update(dets((0, 0, 50, 50)), 0)] == [1]
    t.reset()
    assert [tr.track_id for tr, _ in t.update(dets((300, 0, 350, 50)), 5)] == [1]


@pytest.mark.parametrize(("speed", "size"), [(8.0, 40.0), (37.0, 130.0)])
def test_ids_hold_through_a_fast_pan_with_every_3(speed: float, size: float) -> None:
    # 8 px/frame on 40-px faces: boxes three frames apart overlap by IoU 0.25, under
    # the IoU gate. 37 px/frame on 130 px: someone walking past a 1080p camera.
    # The centre pass, then the velocity, keep the IDs.
    t = IouTracker()
    ids = set()
    for frame in range(0, 60, 3):
        x = speed * frame
        pairs = t.update(
            dets((x, 100, x + size, 100 + size), (x, 400, x + size, 400 + size)), frame
        )
        ids.update(tr.track_id for tr, _ in pairs)
        if frame >= 6:
            box, _ = pairs[0][0].predict(frame + 1)  # the carry between analysed frames
            assert box[0] == pytest.approx(x + speed, abs=0.5)
    assert ids == {1, 2}


def test_far_or_differently_sized_boxes_are_new_faces() -> None:
    for far in ((100, 0, 140, 40), (20, 0, 120, 100)):  # 2.5 box widths away; 2.5x the size
        t = IouTracker()
        t.update(dets((0, 0, 40, 40)), 0)
        ((tr, _),) = t.update(dets(far), 1)
        assert tr.track_id == 0  # not face 1: a new face, tentative
        ((tr, _),) = t.update(dets(far), 2)
        assert tr.track_id == 2


def test_a_missed_face_keeps_its_id_then_expires() -> None:
    t = IouTracker(max_missed=5)
    t.update(dets((0, 0, 50, 50)), 0)
    t.update(dets(), 1)
    assert t.visible() == [] and len(t.tracks) == 1  # hidden, waiting
    ((tr, _),) = t.update(dets((2, 0, 52, 50)), 3)
    assert tr.track_id == 1 and tr.hits == 2
    for f in range(4, 12):
        t.update(dets(), f)
    assert t.tracks == []
    t.update(dets((2, 0, 52, 50)), 12)
    ((tr, _),) = t.update(dets((2, 0, 52, 50)), 13)
    assert tr.track_id == 2


def test_a_track_survives_one_missed_analysed_frame_at_large_every() -> None:
    t = IouTracker(max_missed=5)
    t.update(dets((0, 0, 50, 50)), 0)
    t.update(dets(), 10)  # missed once, 10 frames later
    ((tr, _),) = t.update(dets((0, 0, 50, 50)), 20)
    assert tr.track_id == 1


def test_reset_starts_ids_at_one() -> None:
    t = IouTracker()
    t.update(dets((0, 0, 10, 10), (20, 20, 30, 30)), 0)
    t.reset()
    ((tr, _),) = t.update(dets((0, 0, 10, 10)), 0)
    assert tr.track_id == 1


def test_running_scores() -> None:
    s = RunningScore(VerdictRule(), alpha=0.5, window=3)
    for v, models in [(0.2, {"a": 0.1, "b": 0.3}), (0.6, {"a": 0.5, "b": 0.7}), (1.0, None)]:
        s.add(v, models)
    assert s.running == pytest.approx(0.5 * (0.5 * 0.2 + 0.5 * 0.6) + 0.5 * 1.0)
    assert s.window_mean == pytest.approx(0.6)
    s.add(0.0)
    assert s.window_mean == pytest.approx((0.6 + 1.0 + 0.0) / 3)
    assert s.fake_share == pytest.approx(2 / 4)  # 0.6 and 1.0 are above 0.5
    assert s.mean == pytest.approx(1.8 / 4)
    assert s.model_means() == pytest.approx({"a": 0.6 / 4, "b": 1.0 / 4})


def test_verdict_waits_for_enough_frames() -> None:
    s = RunningScore(VerdictRule(min_scored=5))
    for _ in range(4):
        s.add(0.99)
        assert s.verdict is Verdict.UNKNOWN
    s.add(0.99)
    assert s.verdict is Verdict.FAKE


def test_verdict_hysteresis_does_not_flicker_at_a_band_edge() -> None:
    rule = VerdictRule(threshold=0.5, margin=0.1, hysteresis=0.05)
    assert rule.band(0.62) is Verdict.FAKE
    # Once fake, it takes a score below 0.55 to leave FAKE, and below 0.35 to be REAL.
    assert rule.band(0.57, Verdict.FAKE) is Verdict.FAKE
    assert rule.band(0.53, Verdict.FAKE) is Verdict.UNCERTAIN
    assert rule.band(0.38, Verdict.FAKE) is Verdict.UNCERTAIN
    assert rule.band(0.34, Verdict.FAKE) is Verdict.REAL
    # Uncertain needs to pass an edge by 0.05 to move either way.
    assert rule.band(0.63, Verdict.UNCERTAIN) is Verdict.UNCERTAIN
    assert rule.band(0.66, Verdict.UNCERTAIN) is Verdict.FAKE
    assert rule.band(0.37, Verdict.UNCERTAIN) is Verdict.UNCERTAIN
    assert rule.band(0.34, Verdict.UNCERTAIN) is Verdict.REAL
    assert rule.band(0.43, Verdict.REAL) is Verdict.REAL
    # A score oscillating around 0.6 after a fake call stays fake.
    s = RunningScore(rule, alpha=1.0)
    calls = []
    for v in [0.9] * 5 + [0.58, 0.62, 0.57, 0.61, 0.59]:
        s.add(v)
        calls.append(s.verdict)
    assert calls[4:] == [Verdict.FAKE] * 6


def test_threshold_moves_the_bands() -> None:
    rule = VerdictRule(threshold=0.3)
    assert rule.band(0.45) is Verdict.FAKE and rule.band(0.15) is Verdict.REAL
    with pytest.raises(ValueError):
        VerdictRule(threshold=1.0)


@pytest.mark.parametrize("threshold", [0.02, 0.1, 0.9, 0.99])
def test_a_threshold_near_either_end_leaves_both_calls_reachable(threshold: float) -> None:
    """At 0.9 "fake" needed a score above 1.0: no FAKE, no alert, whatever the face."""
    rule = VerdictRule(threshold=threshold)
    for current in (Verdict.UNKNOWN, Verdict.REAL, Verdict.UNCERTAIN, Verdict.FAKE):
        assert rule.band(1.0, current) is Verdict.FAKE
        assert rule.band(0.0, current) is Verdict.REAL
    assert rule.band(threshold, Verdict.UNCERTAIN) is Verdict.UNCERTAIN


def test_thresholds_from_0_2_to_0_8_keep_the_whole_band() -> None:
    for t in (0.2, 0.5, 0.8):
        rule = VerdictRule(threshold=t)
        assert rule.band(t + 0.099) is Verdict.UNCERTAIN and rule.band(t + 0.101) is Verdict.FAKE
        assert rule.band(t - 0.099) is Verdict.UNCERTAIN and rule.band(t - 0.101) is Verdict.REAL
        assert rule.band(t + 0.149, Verdict.REAL) is Verdict.UNCERTAIN  # hysteresis 0.05


def test_wilson_interval() -> None:
    lo, hi = wilson_interval(5, 8)
    assert lo < 0.5 < hi
    assert wilson_interval(0, 5)[1] < 0.5
    assert wilson_interval(30, 30)[0] > 0.5
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("n_fake", "n_scored", "enough", "expect"),
    [
        (0, 4, None, Verdict.UNKNOWN),  # too few frames for a video
        (0, 30, None, Verdict.REAL),
        (30, 30, None, Verdict.FAKE),
        (5, 8, None, Verdict.UNCERTAIN),  # a majority, but not a significant one
        (15, 30, None, Verdict.UNCERTAIN),
        (500, 750, None, Verdict.FAKE),  # two thirds of a long track
        (1, 1, 1, Verdict.FAKE),  # a photo: its one frame decides
        (0, 1, 1, Verdict.REAL),
        (0, 0, 1, Verdict.UNKNOWN),
    ],
)
def test_summary_is_the_papers_share(
    n_fake: int, n_scored: int, enough: int | None, expect: Verdict
) -> None:
    assert VerdictRule().summary(n_fake, n_scored, enough) is expect


def test_timeline_is_bounded_and_keeps_the_whole_span() -> None:
    tl = Timeline(max_points=64)
    for i in range(1000):
        tl.append(i, i / 30.0 if i % 2 else None, i / 1000.0)
    pts = tl.points()
    assert 32 <= len(pts) <= 64
    assert pts[0][0] == 0 and pts[-1][0] >= 1000 - tl.stride
    assert all(a[0] < b[0] for a, b in itertools.pairwise(pts))
    assert any(p is None for _, p, _ in pts) or tl.stride > 1


def _frame(index: int, pts: float | None, t_capture: float = 0.0) -> Frame:
    return Frame(index, np.zeros((4, 4, 3), np.uint8), t_capture, "test:", pts)


def _judge_run(judge: TrackJudge, scores: list[float], fps: float = 10.0) -> list[FaceResult]:
    box, kps = np.zeros(4, np.float32), np.zeros((5, 2), np.float32)
    return [
        judge.face(1, _frame(i, i / fps), box, kps, s, {"m": s}, analysed=i + 1)
        for i, s in enumerate(scores)
    ]


def test_an_alert_needs_the_live_verdict_fake_for_the_alert_time() -> None:
    judge = TrackJudge(VerdictRule(alert_seconds=1.0))
    faces = _judge_run(judge, [0.9] * 30)  # 3 s of a fake face at 10 fps
    fake_from = next(i for i, f in enumerate(faces) if f.verdict is Verdict.FAKE)
    assert fake_from == 4  # a verdict needs 5 scored frames
    alerted_at = next(i for i, f in enumerate(faces) if f.alerts)
    assert alerted_at == fake_from + 10  # one second later, in the source's time
    assert faces[alerted_at].fake_for == pytest.approx(1.0)
    assert faces[-1].alerts == 1  # one alert per stay, however long
    assert all(f.fake_for == 0.0 for f in faces[:fake_from])


def test_an_alert_re_arms_only_when_the_verdict_leaves_fake() -> None:
    judge = TrackJudge(VerdictRule(alert_seconds=0.5))
    faces = _judge_run(judge, [0.9] * 15 + [0.1] * 10 + [0.9] * 20)
    assert faces[14].alerts == 1
    assert any(f.verdict is not Verdict.FAKE and f.fake_for == 0.0 for f in faces[15:25])
    assert faces[-1].alerts == 2
    (summary,) = judge.summaries(analysed=len(faces))
    assert [frame for frame, _pts in summary.alerts] == [
        i for i in range(1, len(faces)) if faces[i].alerts > faces[i - 1].alerts
    ]
    assert summary.alerts[0][1] == pytest.approx(summary.alerts[0][0] / 10)  # (frame, pts)
    assert summary.last_verdict is faces[-1].verdict is Verdict.FAKE


def test_a_live_source_without_media_time_is_timed_from_its_first_frame() -> None:
    """A UDP stream gives no pts: its report had ``t: null`` at every point and alert."""
    judge = TrackJudge(VerdictRule(alert_seconds=1.0))
    box, kps = np.zeros(4, np.float32), np.zeros((5, 2), np.float32)
    for i in range(30):  # 10 frames a second, captured from t = 5000 s on the monotonic clock
        judge.face(1, _frame(i, None, 5000.0 + i / 10), box, kps, 0.9, {"m": 0.9}, analysed=i + 1)
    (summary,) = judge.summaries(analysed=30)
    assert [t for _f, t, _s in summary.timeline] == pytest.approx([i / 10 for i in range(30)])
    assert summary.alerts == ((14, pytest.approx(1.4)),)
    judge.reset()  # the next input counts from its own first frame
    judge.face(1, _frame(0, None, 7000.0), box, kps, 0.9, {"m": 0.9}, analysed=1)
    (summary,) = judge.summaries(analysed=1)
    assert summary.timeline[0][1] == 0.0


def test_a_file_that_starts_again_does_not_alert_twice_for_one_stay() -> None:
    judge = TrackJudge(VerdictRule(alert_seconds=0.5))
    box, kps = np.zeros(4, np.float32), np.zeros((5, 2), np.float32)
    pts = [i / 10 for i in range(12)] + [i / 10 for i in range(12)]  # looped: pts restart
    faces = [judge.face(1, _frame(i, p), box, kps, 0.9, analysed=i + 1) for i, p in enumerate(pts)]
    assert faces[-1].alerts == 1
    assert faces[12].fake_for == 0.0  # the stay is timed again from the restart


def test_a_stay_in_fake_alerts_once_across_a_fold() -> None:
    """A returning face (young track 2) folded into its earlier ID keeps its stay and alert."""
    judge = TrackJudge(VerdictRule(alert_seconds=0.5))
    box, kps = np.zeros(4, np.float32), np.zeros((5, 2), np.float32)
    for i in range(10):  # track 1: real, then gone
        judge.face(1, _frame(i, i / 10), box, kps, 0.1, analysed=i + 1)
    young = [judge.face(2, _frame(i, i / 10), box, kps, 0.9, analysed=i + 1) for i in range(10, 22)]
    assert young[-1].verdict is Verdict.FAKE and young[-1].alerts == 1
    judge.fold(2, 1)
    after = [judge.face(1, _frame(i, i / 10), box, kps, 0.9, analysed=i + 1) for i in range(22, 40)]
    assert after[-1].verdict is Verdict.FAKE
    assert after[-1].fake_for == pytest.approx(young[-1].fake_for + 1.8)  # the same stay
    assert after[-1].alerts == 1
    (summary,) = judge.summaries(analysed=40)
    assert len(summary.alerts) == 1


def test_without_pts_the_capture_clock_times_the_alert() -> None:
    judge = TrackJudge(VerdictRule(alert_seconds=2.0))
    box, kps = np.zeros(4, np.float32), np.zeros((5, 2), np.float32)
    faces = [
        judge.face(1, _frame(i, None, 100.0 + i), box, kps, 0.9, analysed=i + 1) for i in range(8)
    ]
    assert [f.alerts for f in faces] == [0, 0, 0, 0, 0, 0, 1, 1]  # FAKE from frame 4


def test_the_track_verdict_is_the_summary_scan_reports() -> None:
    judge = TrackJudge(VerdictRule())
    faces = _judge_run(judge, [0.9] * 8 + [0.2] * 12)
    (summary,) = judge.summaries(analysed=len(faces))
    assert faces[-1].track_verdict is summary.verdict
    assert faces[-1].verdict is summary.last_verdict  # the live call at the last frame


def test_a_new_rule_re_bands_live_tracks_and_keeps_their_history() -> None:
    judge = TrackJudge(VerdictRule())
    before = _judge_run(judge, [0.3] * 10)[-1]
    assert before.verdict is Verdict.REAL
    judge.set_rule(VerdictRule(threshold=0.1))
    box, kps = np.zeros(4, np.float32), np.zeros((5, 2), np.float32)
    after = judge.face(1, _frame(10, 1.0), box, kps, 0.3, analysed=11)
    assert after.verdict is Verdict.FAKE  # 0.3 > 0.1 + 0.1
    assert after.fake_share == pytest.approx(1 / 11)  # earlier frames counted at 0.5
    with pytest.raises(ValueError, match="alert_seconds"):
        VerdictRule(alert_seconds=-1.0)


def test_a_face_too_small_to_judge_keeps_its_history_and_says_so() -> None:
    judge = TrackJudge(VerdictRule())
    box, kps = np.zeros(4, np.float32), np.zeros((5, 2), np.float32)
    faces = _judge_run(judge, [0.9] * 8)
    faces += [
        judge.face(1, _frame(8, 0.8), box, kps, analysed=9, too_small=True),
        judge.face(1, _frame(9, 0.9), box, kps, analysed=9),  # carried: the last value stays
        judge.face(1, _frame(10, 1.0), box, kps, analysed=10, too_small=True),
        judge.face(1, _frame(11, 1.1), box, kps, 0.9, analysed=11, too_small=False),
    ]
    assert [f.too_small for f in faces] == [False] * 8 + [True] * 3 + [False]
    assert [f.n_scored for f in faces[7:]] == [8, 8, 8, 8, 9]  # no score while too small
    assert all(f.fake_score is None for f in faces[8:11])
    (summary,) = judge.summaries(analysed=11)
    assert summary.too_small_frames == 2 and summary.n_scored == 9
    assert summary.frames_seen == 12 and summary.last_frame == 11
    # a face first seen too small, then proved to be track 1 returning: its frames count there
    for i in range(12, 15):
        young = judge.face(2, _frame(i, i / 10), box, kps, analysed=i, too_small=True)
    assert young.too_small and young.n_scored == 0 and young.verdict is Verdict.UNKNOWN
    judge.fold(2, 1)
    (summary,) = judge.summaries(analysed=15)
    assert summary.too_small_frames == 5 and summary.last_frame == 14
    assert judge.face(1, _frame(15, 1.5), box, kps, analysed=15).too_small


def test_a_frame_result_says_which_threshold_judged_it() -> None:
    frame = _frame(0, 0.0)
    r = FrameResult(frame, (), StageTimings(), 0.0, True, threshold=0.3)
    assert r.threshold == 0.3
    for bad in (0.0, 1.0, float("nan")):
        with pytest.raises(ValueError, match="threshold"):
            FrameResult(frame, (), StageTimings(), 0.0, True, threshold=bad)
    with pytest.raises(TypeError):
        FrameResult(frame, (), StageTimings(), 0.0, True)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="faces"):
        FrameResult(frame, [], StageTimings(), 0.0, True, threshold=0.5)  # type: ignore[arg-type]
