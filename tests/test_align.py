"""The authors' crop on real photos: where the eyes, nose and mouth land."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from mesolive.align.crop import (
    K_AUTHORS,
    L_FACTOR,
    authors_crop,
    crop_faces,
    crop_transform,
)
from mesolive.align.spans import face_spans
from mesolive.detect.scrfd import ScrfdDetector

from .conftest import MODELS

SIZE = 256
SPAN = SIZE / (L_FACTOR * K_AUTHORS)  # crop pixels spanned by the larger face distance
PHOTOS = ["Tom_Cruise_avp_2014_4.jpg", "bald_guys.jpg", "2008_001009.jpg", "2008_002506.jpg"]


@pytest.fixture(scope="module")
def detector() -> Iterator[ScrfdDetector]:
    with ScrfdDetector(MODELS / "scrfd_500m_bnkps_dynamic.onnx", det_size=640) as d:
        yield d


@pytest.fixture(scope="module")
def crop_detector() -> Iterator[ScrfdDetector]:
    with ScrfdDetector(MODELS / "scrfd_500m_bnkps_dynamic.onnx", det_size=256) as d:
        yield d


def _rotated(img: np.ndarray, degrees: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _check_landmarks(k: np.ndarray) -> None:
    """Keypoints found again in a crop: level eyes, nose at the centre, expected spans."""
    eye_l, eye_r, nose, mouth_l, mouth_r = k
    eyes, mouth = (eye_l + eye_r) / 2, (mouth_l + mouth_r) / 2
    eye_dist = float(np.hypot(*(eye_r - eye_l)))
    span = max(eye_dist, float(np.hypot(*(mouth - eyes))))
    assert abs(eye_r[1] - eye_l[1]) <= 0.12 * eye_dist, "eyes level"
    # Two independent SCRFD-500M detections (frame, crop) each place the nose
    # to a few pixels; 7 % of the crop side allows for both on rotated faces.
    assert np.hypot(*(nose - (SIZE - 1) / 2)) <= 0.07 * SIZE, "nose at the centre"
    assert eyes[1] < 0.4 * SIZE and mouth[1] > 0.55 * SIZE, "eyes above, mouth below the nose"
    assert eye_l[0] < SIZE / 2 < eye_r[0] and mouth_l[0] < SIZE / 2 < mouth_r[0]
    assert 0.8 * SPAN <= span <= 1.2 * SPAN, "1.3 x 2.2 x max(eye, eye-mouth distance)"


def test_transform_puts_the_keypoints_where_the_authors_did() -> None:
    kps = np.array([[100, 120], [160, 110], [132, 150], [108, 185], [158, 178]], np.float32)
    m, side, angle = crop_transform(kps)
    out = kps @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(out[2], [(SIZE - 1) / 2] * 2, atol=1e-9)  # nose at the centre
    assert out[0, 1] == pytest.approx(out[1, 1], abs=1e-9)  # eyes level
    assert angle == pytest.approx(np.degrees(np.arctan2(-10, 60)))
    eyes, mouth = (kps[0] + kps[1]) / 2, (kps[3] + kps[4]) / 2
    expect = L_FACTOR * K_AUTHORS * max(np.hypot(*(kps[1] - kps[0])), np.hypot(*(mouth - eyes)))
    assert side == pytest.approx(expect, rel=1e-6)
    o_eyes, o_mouth = (out[0] + out[1]) / 2, (out[3] + out[4]) / 2
    got = max(np.hypot(*(out[1] - out[0])), np.hypot(*(o_mouth - o_eyes)))
    assert got == pytest.approx(SPAN, rel=1e-6)


def test_face_spans_are_the_crops_spans(shared: Path, detector: ScrfdDetector) -> None:
    """One span per face, the larger distance, the very one each crop's side is made of."""
    eyes_wide = [[0, 0], [40, 0], [20, 10], [15, 20], [25, 20]]  # eye to eye 40, to mouth 20
    long_face = [[0, 0], [10, 0], [5, 20], [0, 60], [10, 60]]  # eye to eye 10, to mouth 60
    np.testing.assert_allclose(face_spans(np.array([eyes_wide, long_face], float)), [40, 60])
    assert face_spans(np.zeros((0, 5, 2), np.float32)).shape == (0,)
    img = cv2.imread(str(shared / "facebox" / "2008_001009.jpg"))
    kps = detector.detect(img).kps
    spans = face_spans(kps)
    assert spans.dtype == np.float64 and spans.shape == (len(kps),) and len(kps) >= 2
    for k, span in zip(kps, spans, strict=True):
        _m, side, _a = crop_transform(k, scale=0.75)
        assert side == pytest.approx(0.75 * L_FACTOR * K_AUTHORS * span, rel=1e-12)


@pytest.mark.parametrize("photo", PHOTOS)
@pytest.mark.parametrize("degrees", [0, 25, -20])
def test_eyes_and_mouth_land_in_place_on_real_photos(
    shared: Path,
    detector: ScrfdDetector,
    crop_detector: ScrfdDetector,
    photo: str,
    degrees: int,
) -> None:
    img = cv2.imread(str(shared / "facebox" / photo))
    if degrees:
        img = _rotated(img, degrees)
    found = detector.detect(img)
    assert len(found) >= 1
    crops = crop_faces(img, found.kps[:3])
    assert crops.shape == (min(3, len(found)), SIZE, SIZE, 3) and crops.dtype == np.uint8
    for crop in crops:
        again = crop_detector.detect(crop)  # the face, detected afresh in the crop
        assert len(again) >= 1
        best = int(np.argmin(np.hypot(*(again.kps[:, 2] - (SIZE - 1) / 2).T)))
        _check_landmarks(again.kps[best])


def test_border_is_numpy_reflect_as_the_authors_padded(shared: Path) -> None:
    img = cv2.imread(str(shared / "facebox" / "Tom_Cruise_avp_2014_4.jpg"))
    # A face near the top-left corner: most of the square lies outside the frame.
    kps = np.array([[20, 30], [70, 28], [45, 60], [25, 85], [68, 84]], np.float32)
    crop = authors_crop(img, kps)
    pad = 300
    padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    ref = authors_crop(padded, kps + pad)
    np.testing.assert_array_equal(crop, ref)


def test_crop_writes_into_a_batch_row(shared: Path, detector: ScrfdDetector) -> None:
    img = cv2.imread(str(shared / "facebox" / "2008_001009.jpg"))
    found = detector.detect(img)
    batch = np.zeros((len(found), SIZE, SIZE, 3), np.uint8)
    for i, k in enumerate(found.kps):
        assert np.shares_memory(authors_crop(img, k, out=batch[i]), batch)
    np.testing.assert_array_equal(batch, crop_faces(img, found.kps))


def test_nearest_sampling_copies_frame_pixels(shared: Path, detector: ScrfdDetector) -> None:
    # The authors' weights saw PIL-NEAREST resized crops: every crop pixel is a frame pixel.
    img = cv2.imread(str(shared / "facebox" / "2008_002506.jpg"))
    crop = crop_faces(img, detector.detect(img).kps[:1])[0]
    frame_colours = {tuple(p) for p in img.reshape(-1, 3)}
    assert all(tuple(p) in frame_colours for p in crop.reshape(-1, 3)[::97])


def test_degenerate_keypoints_still_give_a_crop() -> None:
    img = np.full((50, 50, 3), 128, np.uint8)
    crop = authors_crop(img, np.full((5, 2), 25.0, np.float32))
    assert crop.shape == (SIZE, SIZE, 3)
    assert crop_faces(img, np.zeros((0, 5, 2), np.float32)).shape == (0, SIZE, SIZE, 3)
