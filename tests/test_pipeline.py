"""FramePipeline on real clips: stable IDs, batched scores, tracking between analysed frames."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from mesolive.align.crop import crop_faces
from mesolive.align.spans import MIN_FACE_SPAN_PX, face_spans
from mesolive.errors import InputError, ModelError
from mesolive.pipeline.pipeline import FramePipeline, PipelineConfig
from mesolive.sources.registry import make_source
from mesolive.types import Frame, FrameResult, ReadStatus, TrackSummary, Verdict

GROUP = Path("videos") / "synthetic" / "group_pan_720p30.mp4"
OBAMA = Path("videos") / "real" / "inthewild_obama.mp4"  # one face, span ~80 px
N = 45
FAR = 0.25  # OBAMA shrunk by this: span ~21 px, as if filmed four times farther


def frames(path: Path, n: int) -> list[Frame]:
    src = make_source(str(path))
    src.open()
    out = []
    try:
        while len(out) < n:
            status, frame, _ = src.read(1.0)
            if status is not ReadStatus.OK:
                break
            out.append(frame)
    finally:
        src.close()
    return out


@pytest.fixture(scope="module")
def group(shared: Path) -> list[Frame]:
    return frames(shared / GROUP, N)


def shrunk(fs: list[Frame], factor: float) -> list[Frame]:
    """The frames with their images shrunk by area averaging (a camera farther away)."""
    return [
        replace(
            f, image=cv2.resize(f.image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        )
        for f in fs
    ]


@pytest.fixture(scope="module")
def near(shared: Path) -> list[Frame]:
    return frames(shared / OBAMA, 10)


@pytest.fixture(scope="module")
def two_models() -> Iterator[FramePipeline]:
    with FramePipeline(PipelineConfig(models=("meso4-df", "meso4-f2f"))) as p:
        yield p


def run(p: FramePipeline, fs: list[Frame]) -> list[FrameResult]:
    p.reset()
    return [p.process(f) for f in fs]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every": 0}, "--every"),
        ({"threshold": 1.5}, "--threshold"),
        ({"models": ()}, "at least one model"),
        ({"models": ("meso4-df", "meso4-df")}, "twice"),
        ({"det_size": 8}, "--det-size"),
        ({"det_threshold": 0.0}, "detector threshold"),
        ({"threads": 0}, "--threads"),
        ({"min_face_span": -1.0}, "minimum face span -1.0: expected pixels ≥ 0"),
        ({"min_face_span": float("nan")}, "minimum face span nan"),
    ],
)
def test_bad_config_is_an_input_error(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message) as e:
        PipelineConfig(**kwargs)
    assert "\n" not in str(e.value)


def test_unknown_model_or_detector_fails_at_build() -> None:
    with pytest.raises(ModelError, match="unknown model"):
        FramePipeline(PipelineConfig(models=("meso9",)))
    with pytest.raises(ModelError, match="no such detector"):
        FramePipeline(PipelineConfig(detector="/nonexistent/scrfd.onnx"))


def test_six_faces_keep_their_ids(two_models: FramePipeline, group: list[Frame]) -> None:
    results = run(two_models, group)
    assert two_models.backend == "onnxruntime-cpu"
    assert all(r.analysed for r in results)
    counts = [len(r.faces) for r in results]
    assert np.median(counts) == 6
    first = {f.track_id for f in results[0].faces}
    assert first == {1, 2, 3, 4, 5, 6}
    every_id = {f.track_id for r in results for f in r.faces}
    assert len(every_id) <= 7  # at most one spurious track in 45 frames
    for tid in first:  # each face is followed through (nearly) every frame
        assert sum(any(f.track_id == tid for f in r.faces) for r in results) >= N - 3


def test_scores_are_per_model_and_batched(two_models: FramePipeline, group: list[Frame]) -> None:
    r = run(two_models, group[:1])[0]
    faces = r.faces
    assert [f.track_id for f in faces] == sorted(f.track_id for f in faces)
    for f in faces:
        assert set(f.model_scores) == {"meso4-df", "meso4-f2f"}
        assert f.fake_score == pytest.approx(np.mean(list(f.model_scores.values())), abs=1e-6)
        assert f.n_scored == 1 and f.verdict is Verdict.UNKNOWN
        assert f.xyxy.shape == (4,) and f.kps.shape == (5, 2)
    # The same crops scored one at a time give the same scores as the frame's batch.
    crops = crop_faces(group[0].image, np.stack([f.kps for f in faces]))
    for clf in two_models.classifiers:
        single = [float(clf.score(c[None]).fake[0]) for c in crops]
        batched = [f.model_scores[clf.model_name] for f in faces]
        np.testing.assert_allclose(single, batched, atol=1e-5)
    t = r.timings
    assert t.detect > 0 and t.crop > 0 and t.classify > 0 and t.total >= t.detect
    assert r.latency >= 0 and r.backend == two_models.backend


def test_summaries_follow_the_papers_rule(two_models: FramePipeline, group: list[Frame]) -> None:
    results = run(two_models, group)
    sums = two_models.summaries()
    assert all(isinstance(s, TrackSummary) for s in sums)
    by_id = {s.track_id: s for s in sums}
    last = {f.track_id: f for f in results[-1].faces}
    for tid, f in last.items():
        s = by_id[tid]
        assert s.n_scored == f.n_scored == len(s.timeline)
        assert s.fake_share == pytest.approx(f.fake_share)
        assert s.fake_share == pytest.approx(np.mean([v > 0.5 for _, _, v in s.timeline]))
        assert s.mean_score == pytest.approx(np.mean([v for _, _, v in s.timeline]), abs=1e-6)
        assert set(s.model_means) == {"meso4-df", "meso4-f2f"}
        assert s.first_frame == 0 and s.last_frame >= N - 3
        frame_idx, pts, _ = s.timeline[-1]
        assert pts == pytest.approx(frame_idx / 30.0, abs=0.02)
        # A still group photo, genuine: every face is called real, live and in summary.
        assert f.verdict is Verdict.REAL and s.verdict is Verdict.REAL
    two_models.reset()
    assert two_models.summaries() == []


def test_every_third_frame_is_analysed_and_tracked_between(
    shared: Path, group: list[Frame]
) -> None:
    with FramePipeline(PipelineConfig(every=3)) as p:
        results = run(p, group)
        sums = p.summaries()
    assert [r.analysed for r in results[:6]] == [True, False, False, True, False, False]
    for r in results:
        if not r.analysed:
            assert r.timings.detect == 0 and r.timings.classify == 0
            assert all(f.fake_score is None and f.model_scores == {} for f in r.faces)
            assert len(r.faces) >= 5  # boxes carried, not dropped
    ids = {f.track_id for r in results for f in r.faces}
    assert len(ids) <= 7
    assert max(s.n_scored for s in sums) == N // 3
    assert max(s.frames_seen for s in sums) == N
    # Carried boxes follow the pan: they move between analysed frames.
    a, b = results[3].faces[0], results[4].faces[0]
    assert a.track_id == b.track_id and not np.allclose(a.xyxy, b.xyxy)


def test_the_interval_changes_between_frames_tracks_kept(group: list[Frame]) -> None:
    with FramePipeline(PipelineConfig()) as p:
        first = run(p, group[:4])
        p.set_every(3)  # as the app's "auto" interval does while running
        rest = [p.process(f) for f in group[4:12]]  # no reset: the same stream
        assert p.tracker.max_missed == 15 and p.config.every == 3
        p.set_every(10)
        assert p.tracker.max_missed == 20  # a track outlives the longer gaps
        with pytest.raises(InputError, match="--every 0"):
            p.set_every(0)
    assert all(r.analysed for r in first)
    # analysed where the frame count is a multiple of 3: frames 6, 9 (4, 5, 7, 8 carried)
    assert [r.analysed for r in rest] == [False, False, True, False, False, True, False, False]
    ids = {f.track_id for r in first for f in r.faces}
    assert len(ids) >= 5 and {f.track_id for r in rest for f in r.faces} == ids  # the same faces


def test_a_frame_without_faces_is_a_normal_state(two_models: FramePipeline) -> None:
    two_models.reset()
    black = Frame(0, np.zeros((360, 640, 3), np.uint8), time.monotonic())
    r = two_models.process(black)
    assert r.faces == () and r.analysed and r.timings.classify == 0
    assert two_models.summaries() == []


def test_a_bad_frame_is_a_value_error(two_models: FramePipeline) -> None:
    with pytest.raises(ValueError, match="uint8 BGR"):
        two_models.process(Frame(0, np.zeros((10, 10), np.uint8), time.monotonic()))


def test_a_photo_gets_a_verdict_from_its_one_frame(shared: Path) -> None:
    (frame,) = frames(shared / "facebox" / "2008_001009.jpg", 1)
    with FramePipeline(PipelineConfig()) as p:
        faces = p.process(frame).faces
        sums = p.summaries()
    assert len(sums) == 2
    # the nearer face (span 37 px) is judged; the one behind it (31 px) is too small
    by_id = {s.track_id: s for s in sums}
    spans = face_spans(np.stack([f.kps for f in faces]))
    assert sorted(spans < MIN_FACE_SPAN_PX) == [False, True]
    judged = [by_id[f.track_id] for f, x in zip(faces, spans, strict=True) if x >= MIN_FACE_SPAN_PX]
    small = [by_id[f.track_id] for f in faces if f.too_small]
    assert len(judged) == len(small) == 1
    assert all(s.n_scored == 1 and s.verdict is not Verdict.UNKNOWN for s in judged)
    assert all(s.n_scored == 0 and s.too_small_frames == 1 for s in small)
    assert all(s.verdict is Verdict.UNKNOWN for s in small)


def test_a_one_frame_false_detection_is_never_a_face(shared: Path) -> None:
    """A newsreader before a map: at frame 165 SCRFD also finds a "face" (0.53) in the map."""
    clip = frames(shared / "videos" / "fake" / "ffpp_deepfakes_519_515.mp4", 181)[150:]
    with FramePipeline(PipelineConfig(models=("meso4-df",), every=3)) as p:
        assert len(p.detector.detect(clip[15].image)) == 2  # the newsreader and the map
        results = run(p, clip)
        sums = p.summaries()
    assert [s.track_id for s in sums] == [1]
    assert sums[0].n_scored == 11 and sums[0].verdict is not Verdict.UNKNOWN
    assert all([f.track_id for f in r.faces] == [1] for r in results)


def test_a_face_too_small_is_tracked_not_judged(near: list[Frame]) -> None:
    far = shrunk(near, FAR)
    with FramePipeline(PipelineConfig(models=("meso4-df",), every=2)) as p:
        results = run(p, far)
        (s,) = p.summaries()
    assert [len(r.faces) for r in results] == [1] * len(far)  # found and followed
    faces = [r.faces[0] for r in results]
    analysed = [r.faces[0] for r in results if r.analysed]
    spans = face_spans(np.stack([f.kps for f in analysed]))
    assert len(analysed) == 5 and max(spans) < 0.8 * MIN_FACE_SPAN_PX  # well below
    for f in faces:  # analysed frames and the ones carried between them alike
        assert f.track_id == 1 and f.too_small and f.fake_score is None and f.model_scores == {}
        assert f.n_scored == 0 and f.verdict is Verdict.UNKNOWN
    assert all(r.timings.classify == 0 and r.timings.crop == 0 for r in results)
    assert s.too_small_frames == 5 and s.n_scored == 0 and s.timeline == ()
    assert s.verdict is Verdict.UNKNOWN and s.frames_seen == len(far)
    assert (s.first_frame, s.last_frame) == (far[0].index, far[-2].index)  # last detection

    with FramePipeline(PipelineConfig(models=("meso4-df",), min_face_span=0)) as p:
        judged = [f for r in run(p, far) for f in r.faces]
        (s,) = p.summaries()
    assert len(judged) == len(far)
    assert all(not f.too_small and f.fake_score is not None for f in judged)
    assert s.n_scored == len(far) and s.too_small_frames == 0


def test_a_face_near_enough_is_judged_as_before(
    two_models: FramePipeline, near: list[Frame], group: list[Frame]
) -> None:
    results = run(two_models, near)
    assert all(len(r.faces) == 1 and not r.faces[0].too_small for r in results)
    assert all(r.faces[0].fake_score is not None for r in results)
    assert two_models.summaries()[0].too_small_frames == 0
    # a frame with faces of both kinds: the others are scored exactly as on their own
    every = run(two_models, group[:1])[0].faces
    spans = face_spans(np.stack([f.kps for f in every]))
    bar = float(np.median(spans))
    with FramePipeline(PipelineConfig(models=("meso4-df", "meso4-f2f"), min_face_span=bar)) as p:
        some = p.process(group[0]).faces
    assert [f.track_id for f in some] == [f.track_id for f in every]
    assert [f.too_small for f in some] == list(spans < bar)
    assert 0 < sum(f.too_small for f in some) < len(some)
    for f, g in zip(some, every, strict=True):
        if f.too_small:
            assert f.fake_score is None and f.model_scores == {} and f.n_scored == 0
        else:
            assert f.model_scores == pytest.approx(g.model_scores, abs=1e-6)


def test_fixed_detector_file_is_accepted(shared: Path, group: list[Frame]) -> None:
    cfg = PipelineConfig(detector=str(shared / "models" / "scrfd_500m_bnkps.onnx"), det_size=320)
    with FramePipeline(cfg) as p:
        assert "640x640" in p.detector_name
        assert len(p.process(group[0]).faces) == 6


def test_threshold_moves_while_running(group: list[Frame]) -> None:
    """A new threshold re-bands every live track at its next scored frame, history kept."""
    with FramePipeline(PipelineConfig(models=("meso4-df",))) as p:
        before = [p.process(f) for f in group[:20]][-1]
        assert any(f.verdict is Verdict.REAL for f in before.faces)  # the authors' net: real
        counted = {f.track_id: f.fake_share for f in before.faces}
        p.set_rule(threshold=0.05, alert_seconds=3.0)  # nothing is "real" below 0.05 - 0.1
        after = [p.process(f) for f in group[20:26]][-1]
        assert after.threshold == 0.05  # every result says what it was judged with
        live = [f for f in after.faces if f.n_scored >= 5]
        assert live and all(f.verdict is not Verdict.REAL for f in live)
        assert any(f.fake_share > counted.get(f.track_id, 1.0) for f in live)
        with pytest.raises(InputError, match="threshold"):
            p.set_rule(threshold=1.0, alert_seconds=3.0)


def _same(a: list[FrameResult], b: list[FrameResult]) -> bool:
    def key(r: FrameResult) -> list[tuple]:
        return [(f.track_id, f.fake_score, f.verdict, tuple(f.xyxy)) for f in r.faces]

    return [r.frame.index for r in a] == [r.frame.index for r in b] and all(
        key(x) == key(y) and x.analysed == y.analysed for x, y in zip(a, b, strict=True)
    )


def test_stream_gives_what_process_gives_in_order(
    two_models: FramePipeline, group: list[Frame]
) -> None:
    """Detection overlapping classification changes nothing in the results."""
    expected = run(two_models, group)
    two_models.reset()
    streamed = list(two_models.stream(iter(group)))
    assert _same(streamed, expected)
    assert all(r.timings.detect > 0 for r in streamed)


def test_stream_raises_a_failure_after_the_frames_before_it(
    two_models: FramePipeline, group: list[Frame]
) -> None:
    def frames_then_a_failure() -> Iterator[Frame]:
        yield from group[:5]
        raise OSError("the disk went away")

    two_models.reset()
    got: list[FrameResult] = []
    with pytest.raises(OSError, match="disk went away"):
        got.extend(two_models.stream(frames_then_a_failure()))
    assert [r.frame.index for r in got] == [f.index for f in group[:5]]


def test_leaving_a_stream_early_stops_its_thread(
    two_models: FramePipeline, group: list[Frame]
) -> None:
    """The conftest fails a test that leaves a thread running."""
    two_models.reset()
    results = two_models.stream(iter(group), depth=1)
    assert next(results).frame.index == group[0].index
    results.close()
    assert two_models.frames_processed <= 3  # one taken, at most depth + 1 detected ahead
