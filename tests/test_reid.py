"""Faces keep their identity: appearance descriptors and re-identification in the tracker.

Real frames of the six-face 720p clip, real SCRFD detections; the clip is
looped as the app loops a file.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mesolive.detect.scrfd import ScrfdDetector, resolve_detector
from mesolive.track.appearance import NOT_SAME_FACE, SAME_FACE, LbpDescriber
from mesolive.track.iou_tracker import IouTracker
from mesolive.types import FaceDetections
from tests.conftest import MODELS

GROUP = Path("videos") / "synthetic" / "group_pan_720p30.mp4"
EVERY = 3


@pytest.fixture(scope="module")
def clip(shared: Path) -> list[tuple[np.ndarray, FaceDetections]]:
    """Every third frame of the clip (100) with its detections."""
    detector = ScrfdDetector(resolve_detector(None, str(MODELS)), det_size=320, device="cpu")
    cap = cv2.VideoCapture(str(shared / GROUP))
    frames = []
    index = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        if index % EVERY == 0:
            frames.append((image, detector.detect(image)))
        index += 1
    cap.release()
    detector.close()
    assert len(frames) == 100
    return frames


def _loop(clip, tracker: IouTracker, loops: int) -> tuple[set[int], dict[int, int]]:
    """Feed the clip ``loops`` times; the IDs given out and the young IDs folded away."""
    seen: set[int] = set()
    merged: dict[int, int] = {}
    for k in range(loops * len(clip)):
        image, dets = clip[k % len(clip)]
        frame = k * EVERY
        for track, _ in tracker.update(dets, frame, image=image, now=frame / 30):
            if track.confirmed:  # a first sighting has no ID yet
                seen.add(track.track_id)
        merged.update(tracker.merged)
    return seen, merged


def test_descriptors_are_unit_rows_that_tell_the_six_people_apart(clip) -> None:
    describe = LbpDescriber()
    image0, dets0 = clip[0]
    image1, dets1 = clip[20]  # two seconds later; the faces have moved little
    a, b = describe(image0, dets0.kps), describe(image1, dets1.kps)
    assert a.shape == (6, describe.dim) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    centres0 = (dets0.xyxy[:, 0] + dets0.xyxy[:, 2]) / 2
    centres1 = (dets1.xyxy[:, 0] + dets1.xyxy[:, 2]) / 2
    same = np.abs(centres0[:, None] - centres1[None, :]).argmin(axis=1)  # same person
    sim = a @ b.T
    own = sim[np.arange(6), same]
    others = sim[~np.eye(6, dtype=bool)[:, same.argsort()].T]
    assert own.min() >= SAME_FACE > others.max(), (own, others.max())
    assert describe(image0, dets0.kps[:0]).shape == (0, describe.dim)


def test_a_looping_clip_keeps_one_id_per_face(clip) -> None:
    plain, _ = _loop(clip, IouTracker(max_missed=15), loops=3)
    assert len(plain) > 6  # by position alone, the face that leaves comes back as new
    tracker = IouTracker(max_missed=15, describe=LbpDescriber(), reid_seconds=10.0)
    seen, merged = _loop(clip, tracker, loops=3)
    assert len(seen - set(merged)) == 6, (seen, merged)
    assert all(old < young for young, old in merged.items())


def test_a_face_gone_longer_than_reid_seconds_gets_a_new_id(clip) -> None:
    tracker = IouTracker(max_missed=15, describe=LbpDescriber(), reid_seconds=10.0)
    image, dets = clip[0]
    first = {t.track_id for t, _ in tracker.update(dets, 0, image=image, now=0.0)}
    nobody = FaceDetections(
        np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
    )
    for k in range(1, 20):  # everyone leaves: the tracks expire and are remembered
        tracker.update(nobody, k * EVERY, image=image, now=k * EVERY / 30)
    assert {t.track_id for t, _ in tracker.update(dets, 300, image=image, now=12.0)} == {0}
    late = {t.track_id for t, _ in tracker.update(dets, 303, image=image, now=12.1)}
    assert late.isdisjoint(first) and len(late) == 6
    tracker.reset()
    tracker.update(dets, 0, image=image, now=0.0)
    for k in range(1, 20):
        tracker.update(nobody, k * EVERY, image=image, now=k * EVERY / 30)
    back = {t.track_id for t, _ in tracker.update(dets, 300, image=image, now=5.0)}
    assert back == first


def test_someone_else_in_a_familiar_place_is_not_taken_for_the_face_that_left(clip) -> None:
    """Face B pasted where face A was: a new ID, although place and size agree."""
    describe = LbpDescriber()
    image, dets = clip[0]
    order = np.argsort(dets.xyxy[:, 0])
    a, b = int(order[1]), int(order[2])  # two neighbours of similar size
    tracker = IouTracker(max_missed=15, describe=describe, reid_seconds=10.0)
    ids = {i: t.track_id for t, i in tracker.update(dets, 0, image=image, now=0.0)}
    for k in range(1, 6):  # A's track learns its look
        tracker.update(dets, k * EVERY, image=image, now=k * EVERY / 30)
    keep = np.arange(len(dets)) != a
    without_a = FaceDetections(dets.xyxy[keep], dets.score[keep], dets.kps[keep])
    for k in range(6, 12):  # A leaves
        tracker.update(without_a, k * EVERY, image=image, now=k * EVERY / 30)
    # B's face, moved onto A's place
    shift = ((dets.xyxy[a, :2] + dets.xyxy[a, 2:]) - (dets.xyxy[b, :2] + dets.xyxy[b, 2:])) / 2
    m = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    pasted = image.copy()
    x1, y1, x2, y2 = (dets.xyxy[a] + [-20, -20, 20, 20]).astype(int)
    moved = cv2.warpAffine(image, m, (image.shape[1], image.shape[0]))
    pasted[y1:y2, x1:x2] = moved[y1:y2, x1:x2]
    kps = dets.kps.copy()
    kps[a] = dets.kps[b] + shift
    boxes = dets.xyxy.copy()
    boxes[a] = dets.xyxy[b] + np.tile(shift, 2)
    swapped = FaceDetections(boxes, dets.score, kps)
    sim = float(describe(pasted, kps[a : a + 1])[0] @ describe(image, dets.kps[a : a + 1])[0])
    assert sim < NOT_SAME_FACE  # the descriptor itself sees two people
    pairs = tracker.update(swapped, 12 * EVERY, image=pasted, now=12 * EVERY / 30)
    new = {i: t.track_id for t, i in pairs}
    assert new[a] not in ids.values()
    assert all(new[i] == ids[i] for i in ids if i != a)


def test_the_pipeline_reports_six_faces_after_three_loops_of_the_clip(shared: Path) -> None:
    """What the app shows on a looping file: six IDs, young IDs folded away in the results."""
    from mesolive.pipeline.pipeline import FramePipeline, PipelineConfig
    from mesolive.sources.registry import make_source
    from mesolive.types import ReadStatus

    source = make_source(str(shared / GROUP), loop=True)
    shown: set[int] = set()
    folded: dict[int, int] = {}
    scored = 0
    config = PipelineConfig(models=("meso4-df",), every=EVERY, model_dir=str(MODELS))
    with FramePipeline(config) as pipeline, source:
        for _ in range(3 * 300):
            status, frame, message = source.read(5.0)
            assert status is ReadStatus.OK, message
            result = pipeline.process(frame)
            shown |= {f.track_id for f in result.faces}
            folded.update(result.merged)
            scored += sum(f.fake_score is not None for f in result.faces)
        tracks = pipeline.summaries()
    assert folded and len(shown - set(folded)) == 6, (shown, folded)
    assert [t.track_id for t in tracks] == sorted(shown - set(folded))
    # the folded tracks' frames went to the earlier ones: every scored face counted once
    assert sum(t.n_scored for t in tracks) == scored
