"""Drawing the per-face overlay: boxes, labels and score sparklines.

The colour of a box follows the face's *running* score against the threshold
(green well below, amber close below, red at or above). Colour is never the
only cue: each label spells the verdict and the score in text and carries a
small bar chart of the recent scores, so the overlay reads the same in
greyscale and for colour-blind users.

All functions draw with a ``QPainter`` the caller has opened, in the painter's
device coordinates; a :class:`FrameToView` maps frame pixels onto them. They
are used by the main video view, the overlay-mode window and the snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPen, QRegion

from mesolive.types import FaceResult, Verdict

#: A running score at least this far below the threshold is green; closer is amber.
AMBER_MARGIN = 0.15

GREEN = QColor(40, 200, 70)
AMBER = QColor(255, 176, 0)
RED = QColor(230, 30, 40)
GREY = QColor(170, 170, 170)  # a face not scored yet

#: Recent scores shown in a label's sparkline.
SPARK_POINTS = 24

_VERDICT_TEXT = {
    Verdict.FAKE: "FAKE",
    Verdict.REAL: "real",
    Verdict.UNCERTAIN: "unsure",
    Verdict.UNKNOWN: "…",
}


def score_band(score: float, threshold: float) -> str:
    """``"green"``, ``"amber"`` or ``"red"`` for a fake score in [0, 1]."""
    if score >= threshold:
        return "red"
    if score >= threshold - AMBER_MARGIN:
        return "amber"
    return "green"


def score_colour(score: float | None, threshold: float) -> QColor:
    """The box colour of a running fake score (grey while a face has no score)."""
    if score is None:
        return QColor(GREY)
    return QColor({"green": GREEN, "amber": AMBER, "red": RED}[score_band(score, threshold)])


def face_colour(face: FaceResult, threshold: float) -> QColor:
    """Colour of a face's box: its running score's band, grey before its first score."""
    return score_colour(face.running_score if face.n_scored > 0 else None, threshold)


def label_text(face: FaceResult) -> str:
    """``"#3 FAKE 72%"``: track ID, the verdict in words and the running fake %."""
    if face.n_scored <= 0:
        return f"#{face.track_id} …"
    word = _VERDICT_TEXT.get(face.verdict, face.verdict.value)
    return f"#{face.track_id} {word} {round(100 * face.running_score):d}%"


@dataclass(frozen=True)
class FrameToView:
    """Maps frame pixels to painter coordinates: ``view = frame * scale + offset``."""

    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0

    def rect(self, xyxy: Sequence[float]) -> QRectF:
        """A (4,) x1 y1 x2 y2 box in frame pixels as a rectangle in view coordinates."""
        x1, y1, x2, y2 = (float(v) for v in xyxy[:4])
        return QRectF(
            x1 * self.scale + self.dx,
            y1 * self.scale + self.dy,
            (x2 - x1) * self.scale,
            (y2 - y1) * self.scale,
        )

    @staticmethod
    def fit(frame_w: int, frame_h: int, area: QRectF) -> FrameToView:
        """Scale a frame to fit ``area``, keeping its aspect ratio, centred."""
        if frame_w <= 0 or frame_h <= 0 or area.width() <= 0 or area.height() <= 0:
            return FrameToView(1.0, area.x(), area.y())
        s = min(area.width() / frame_w, area.height() / frame_h)
        return FrameToView(
            s,
            area.x() + (area.width() - frame_w * s) / 2,
            area.y() + (area.height() - frame_h * s) / 2,
        )


class OverlayPainter:
    """Draws faces with a given threshold and per-track score histories.

    Parameters
    ----------
    threshold
        Fake-score threshold of the colour bands.
    line_width
        Box outline width in painter pixels (the label font scales with it).
    """

    def __init__(self, threshold: float = 0.5, line_width: float = 3.0) -> None:
        self.threshold = threshold
        self.line_width = line_width
        self._font = QFont()
        self._font.setBold(True)
        self._font.setPixelSize(max(11, round(4.5 * line_width)))

    def draw(
        self,
        painter: QPainter,
        faces: Sequence[FaceResult],
        to_view: FrameToView,
        history: Mapping[int, Sequence[float]] | None = None,
    ) -> list[QRectF]:
        """Draw every face; returns the rectangles painted (boxes and labels).

        ``history`` maps a track ID to its recent fake scores (oldest first) for
        the sparkline; tracks without one get no sparkline.
        """
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setFont(self._font)
        painted: list[QRectF] = []
        for face in faces:
            painted.extend(
                self._draw_face(painter, face, to_view, (history or {}).get(face.track_id))
            )
        painter.restore()
        return painted

    def mask(self, faces: Sequence[FaceResult], to_view: FrameToView) -> QRegion:
        """The region :meth:`draw` paints, for a window shape without a compositor."""
        region = QRegion()
        fm = QFontMetricsF(self._font)
        w = int(self.line_width) + 2
        for face in faces:
            r = to_view.rect(face.xyxy).toAlignedRect()
            region = region.united(QRegion(r.x() - w, r.y() - w, r.width() + 2 * w, w * 2))
            region = region.united(QRegion(r.x() - w, r.bottom() - w, r.width() + 2 * w, w * 2))
            region = region.united(QRegion(r.x() - w, r.y() - w, w * 2, r.height() + 2 * w))
            region = region.united(QRegion(r.right() - w, r.y() - w, w * 2, r.height() + 2 * w))
            label = self._label_rect(face, QPointF(r.topLeft()), fm)
            region = region.united(QRegion(label.toAlignedRect()))
        return region

    # -- internals ---------------------------------------------------------------

    def _label_rect(self, face: FaceResult, top_left: QPointF, fm: QFontMetricsF) -> QRectF:
        pad = 3.0
        text_w = fm.horizontalAdvance(label_text(face))
        h = fm.height() + 2 * pad
        spark_w = SPARK_POINTS * 2.0 + 4
        x, y = float(top_left.x()), float(top_left.y())
        y = y - h if y - h >= 0 else y  # above the box, inside it at the top edge
        return QRectF(x, y, text_w + 2 * pad + spark_w + pad, h)

    def _draw_face(
        self,
        painter: QPainter,
        face: FaceResult,
        to_view: FrameToView,
        history: Sequence[float] | None,
    ) -> list[QRectF]:
        colour = face_colour(face, self.threshold)
        box = to_view.rect(face.xyxy)
        pen = QPen(colour, self.line_width)
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(box)

        fm = QFontMetricsF(painter.font())
        label = self._label_rect(face, box.topLeft(), fm)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawRect(label)
        # Dark text on green/amber/grey, white on red: readable either way.
        text_colour = QColor(255, 255, 255) if colour == RED else QColor(0, 0, 0)
        painter.setPen(text_colour)
        pad = 3.0
        text = label_text(face)
        text_w = fm.horizontalAdvance(text)
        painter.drawText(
            QPointF(label.x() + pad, label.y() + pad + fm.ascent()),
            text,
        )
        spark = QRectF(
            label.x() + 2 * pad + text_w, label.y() + pad, SPARK_POINTS * 2.0 + 4, fm.height()
        )
        self._draw_sparkline(painter, spark, history)
        return [box, label]

    def _draw_sparkline(
        self, painter: QPainter, rect: QRectF, scores: Sequence[float] | None
    ) -> None:
        """Bars of recent scores on a dark inset, with a tick at the threshold."""
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(20, 20, 20, 220))
        painter.drawRect(rect)
        inner = rect.adjusted(2, 2, -2, -2)
        values = list(scores or [])[-SPARK_POINTS:]
        bar_w = inner.width() / SPARK_POINTS
        x0 = inner.right() - bar_w * len(values)
        for i, v in enumerate(values):
            v = min(max(float(v), 0.0), 1.0)
            h = max(2.0, v * inner.height())  # a low score still shows as a stub
            painter.setBrush(score_colour(v, self.threshold))
            painter.drawRect(QRectF(x0 + i * bar_w, inner.bottom() - h, max(1.0, bar_w - 0.5), h))
        y_thr = inner.bottom() - self.threshold * inner.height()
        painter.setPen(QPen(QColor(255, 255, 255, 160), 1.0, Qt.PenStyle.DotLine))
        painter.drawLine(QPointF(inner.left(), y_thr), QPointF(inner.right(), y_thr))
