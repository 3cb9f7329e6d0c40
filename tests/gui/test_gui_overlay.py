"""Overlay drawing from FrameResult objects: colours, labels, sparklines, the view."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QImage, QPainter

from mesolive.gui.overlay import (
    AMBER,
    BANDS,
    GREEN,
    GREY,
    RED,
    FrameToView,
    OverlayPainter,
    face_band,
    face_colour,
    frame_score_colour,
    label_text,
)
from mesolive.gui.video_view import VideoView, bgr_to_qimage, render_annotated
from mesolive.track.judge import TrackJudge
from mesolive.track.smoothing import VerdictRule
from mesolive.types import FaceResult, Frame, Verdict
from tests.gui.conftest import make_face, make_result

pytestmark = pytest.mark.gui


def qimage_to_rgb(img: QImage) -> np.ndarray:
    """(H, W, 3) uint8 RGB copy of a QImage."""
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)
    return buf[:, : 3 * w].reshape(h, w, 3).copy()


def colour_share(pixels: np.ndarray, colour: QColor, tol: int = 40) -> float:
    """Share of ``pixels`` ((N, 3) RGB) within ``tol`` of ``colour``."""
    ref = np.array([colour.red(), colour.green(), colour.blue()], np.int32)
    d = np.abs(pixels.reshape(-1, 3).astype(np.int32) - ref).max(axis=1)
    return float((d <= tol).mean())


def box_edge_pixels(rgb: np.ndarray, xyxy, inset: int = 0) -> np.ndarray:
    """Pixels along the left and right edges of a box (mid half of its height)."""
    x1, y1, x2, y2 = (round(v) for v in xyxy)
    ys = slice(y1 + (y2 - y1) // 4, y2 - (y2 - y1) // 4)
    return np.concatenate([rgb[ys, x1 + inset], rgb[ys, x2 + inset]])


@pytest.mark.parametrize(
    ("verdict", "colour"),
    [
        (Verdict.REAL, GREEN),
        (Verdict.UNCERTAIN, AMBER),
        (Verdict.FAKE, RED),
        (Verdict.UNKNOWN, GREY),
    ],
)
def test_a_box_is_coloured_by_its_verdict_whatever_its_score(verdict, colour):
    """The pipeline's verdict owns the colour: 0.45 called FAKE is red, not amber."""
    face = make_face(1, (0, 0, 10, 10), 0.45, verdict=verdict)
    assert face_colour(face) == colour
    assert {"green": GREEN, "amber": AMBER, "red": RED, "grey": GREY}[BANDS[verdict]] == colour


def test_sparkline_bars_are_the_papers_fake_frames():
    assert frame_score_colour(0.51, 0.5) == RED
    assert frame_score_colour(0.5, 0.5) == GREEN  # a fake frame is one *above* the threshold
    assert frame_score_colour(0.3, 0.2) == RED


def test_label_spells_id_verdict_and_percent():
    assert label_text(make_face(3, (0, 0, 10, 10), 0.724, verdict=Verdict.FAKE)) == "#3 FAKE 72%"
    assert label_text(make_face(1, (0, 0, 10, 10), 0.1, verdict=Verdict.REAL)) == "#1 real 10%"
    unsure = make_face(2, (0, 0, 10, 10), 0.55, verdict=Verdict.UNCERTAIN)
    assert label_text(unsure) == "#2 uncertain 55%"  # the word of the table and the reports
    early = make_face(4, (0, 0, 10, 10), 0.4, n_scored=2, verdict=Verdict.UNKNOWN)
    assert label_text(early) == "#4 unknown 40%"
    unscored = make_face(7, (0, 0, 10, 10), 0.0, n_scored=0, verdict=Verdict.UNKNOWN)
    assert label_text(unscored) == "#7 …"


def too_small_after(score: float, xyxy: tuple[float, float, float, float]) -> FaceResult:
    """A face the judge scored ``score`` in 8 frames, then found too small to judge."""
    judge = TrackJudge(VerdictRule())
    box, kps = np.asarray(xyxy, np.float32), np.zeros((5, 2), np.float32)
    for i in range(8):
        frame = Frame(i, np.zeros((4, 4, 3), np.uint8), i / 10, "test:", i / 10)
        judge.face(1, frame, box, kps, score, {"meso4-df": score}, analysed=i + 1)
    frame = Frame(8, np.zeros((4, 4, 3), np.uint8), 0.8, "test:", 0.8)
    return judge.face(1, frame, box, kps, analysed=9, too_small=True)


@pytest.mark.parametrize(("score", "earlier"), [(0.95, Verdict.FAKE), (0.05, Verdict.REAL)])
def test_a_face_too_small_to_judge_is_grey_and_says_so(qapp, score, earlier):
    """Its earlier verdict is not current: neither its colour nor its word is shown."""
    face = too_small_after(score, (300, 300, 500, 500))
    assert face.too_small and face.verdict is earlier  # the judge keeps the earlier call
    assert label_text(face) == "#1 too small"
    assert face_colour(face) == GREY and face_band(face) == "grey"
    img = QImage(800, 600, QImage.Format.Format_RGB32)
    img.fill(QColor(90, 90, 90))
    p = QPainter(img)
    OverlayPainter(line_width=4).draw(p, make_result([face]), FrameToView())
    p.end()
    rgb = qimage_to_rgb(img)
    assert colour_share(box_edge_pixels(rgb, face.xyxy), GREY) > 0.9
    assert colour_share(rgb[282:298, 302:360], GREY) > 0.3  # the label above the box


def test_boxes_are_drawn_in_their_band_colour(qapp):
    faces = [
        make_face(1, (100, 200, 260, 400), 0.10),  # green
        make_face(2, (400, 200, 560, 400), 0.42, verdict=Verdict.UNCERTAIN),  # amber
        make_face(3, (700, 200, 860, 400), 0.90),  # red
        make_face(4, (1000, 200, 1160, 400), 0.0, n_scored=0, verdict=Verdict.UNKNOWN),
    ]
    img = QImage(1280, 720, QImage.Format.Format_RGB32)
    img.fill(QColor(90, 90, 90))
    p = QPainter(img)
    painted = OverlayPainter(line_width=4).draw(p, make_result(faces), FrameToView())
    p.end()
    assert len(painted) == 2 * len(faces)  # a box and a label each
    rgb = qimage_to_rgb(img)
    for face, colour in zip(faces, (GREEN, AMBER, RED, GREY), strict=True):
        edge = box_edge_pixels(rgb, face.xyxy)
        assert colour_share(edge, colour) > 0.9, f"track {face.track_id}"
        # the label sits above the box, filled with the same colour
        x1, y1 = round(face.xyxy[0]), round(face.xyxy[1])
        label = rgb[y1 - 18 : y1 - 2, x1 + 2 : x1 + 60]
        assert colour_share(label, colour) > 0.3
        # and carries text: dark or white glyph pixels inside it
        assert (
            colour_share(label, QColor(0, 0, 0), 60)
            + colour_share(label, QColor(255, 255, 255), 60)
            > 0.02
        )


def test_a_label_at_the_frames_edge_stays_whole_inside_it(qapp):
    """A face at the right edge had its label cut off ("#2 real 11%" without the "%")."""
    faces = [make_face(2, (1200, 300, 1279, 400), 0.1), make_face(3, (0, 0, 90, 100), 0.9)]
    result = make_result(faces)
    img = QImage(1280, 720, QImage.Format.Format_RGB32)
    img.fill(QColor(90, 90, 90))
    p = QPainter(img)
    painted = OverlayPainter(line_width=4).draw(p, result, FrameToView())
    p.end()
    frame = QRectF(0, 0, 1280, 720)
    right_label, corner_label = painted[1], painted[3]
    assert frame.contains(right_label) and frame.contains(corner_label)
    assert right_label.right() == pytest.approx(1280) and right_label.left() < 1200
    assert corner_label.topLeft() == QPointF(0, 0)  # inside its box at the top-left corner
    # the overlay window's shape holds the label where it is drawn
    mask = OverlayPainter(line_width=4).mask(result, FrameToView())
    assert mask.contains(right_label.toAlignedRect().adjusted(1, 1, -1, -1))


def test_labels_of_faces_side_by_side_do_not_cover_each_other(qapp):
    """In a crowd, "#15 uncertain 53%" was drawn over "#22 too small"."""
    faces = [make_face(i, (100 + 70 * i, 300, 160 + 70 * i, 380), 0.1 * i) for i in range(1, 6)]
    result = make_result(faces)
    img = QImage(1280, 720, QImage.Format.Format_RGB32)
    p = QPainter(img)
    painted = OverlayPainter(line_width=4).draw(p, result, FrameToView())
    p.end()
    labels = painted[1::2]
    assert labels[0].bottom() == pytest.approx(300)  # the first sits above its box
    for i, a in enumerate(labels):
        assert not any(a.intersects(b) for b in labels[i + 1 :]), i
    mask = OverlayPainter(line_width=4).mask(result, FrameToView())
    assert all(mask.contains(r.toAlignedRect().adjusted(1, 1, -1, -1)) for r in labels)


def test_sparkline_bars_follow_the_history(qapp):
    face = make_face(1, (300, 300, 500, 500), 0.9)
    history = {1: [0.1] * 12 + [0.95] * 12}
    img = QImage(800, 600, QImage.Format.Format_RGB32)
    img.fill(QColor(90, 90, 90))
    p = QPainter(img)
    OverlayPainter(line_width=4).draw(p, make_result([face]), FrameToView(), history)
    p.end()
    rgb = qimage_to_rgb(img)
    label = rgb[270:300, 300:520]
    # both green (old, low) and red (new, high) bars appear in the label's sparkline
    assert colour_share(label, GREEN) > 0.001
    assert colour_share(label, RED) > 0.05


def test_frame_to_view_fits_and_centres():
    m = FrameToView.fit(1280, 720, QRectF(0, 0, 640, 640))
    assert m.scale == pytest.approx(0.5)
    assert (m.dx, m.dy) == pytest.approx((0.0, 140.0))
    r = m.rect([100, 100, 300, 200])
    assert (r.x(), r.y(), r.width(), r.height()) == pytest.approx((50, 190, 100, 50))


def test_qimage_owns_its_pixels():
    a = np.zeros((4, 6, 3), np.uint8)
    a[..., 2] = 255  # red in BGR
    img = bgr_to_qimage(a)
    a[...] = 0  # the source goes away / is reused: the image keeps its pixels
    assert QColor(img.pixel(3, 2)) == QColor(255, 0, 0)
    with pytest.raises(ValueError, match="expected"):
        bgr_to_qimage(np.zeros((4, 6), np.uint8))


def test_video_view_draws_the_newest_result_scaled(qtbot):
    view = VideoView()
    qtbot.addWidget(view)
    view.resize(640, 360)
    view.show()
    qtbot.waitExposed(view)
    old = make_result([make_face(1, (100, 100, 300, 400), 0.9)], index=0)
    new = make_result([make_face(1, (600, 100, 900, 400), 0.1)], index=1)
    view.set_result(old)
    view.set_result(new)  # before a paint: the old one is superseded
    qtbot.waitUntil(lambda: view.painted >= 1, timeout=3000)
    assert view.superseded == 1
    assert view.result is new
    rgb = qimage_to_rgb(view.grab().toImage())
    assert rgb.shape[:2] == (360, 640)
    # the frame is 1280x720 in a 640x360 view: scale 0.5
    edge = box_edge_pixels(rgb, [x * 0.5 for x in new.faces[0].xyxy])
    assert colour_share(edge, GREEN) > 0.8
    assert colour_share(box_edge_pixels(rgb, [x * 0.5 for x in old.faces[0].xyxy]), RED) < 0.05


def test_annotated_snapshot_is_full_resolution(qapp):
    result = make_result([make_face(2, (400, 200, 560, 400), 0.42, verdict=Verdict.UNCERTAIN)])
    img = render_annotated(result, OverlayPainter())
    assert (img.width(), img.height()) == (1280, 720)
    rgb = qimage_to_rgb(img)
    assert colour_share(box_edge_pixels(rgb, result.faces[0].xyxy), AMBER) > 0.8
