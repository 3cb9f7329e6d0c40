"""Drawing the per-face overlay: boxes, labels and score sparklines.

Nothing here judges a face. The colour of a box is its live verdict, as the
pipeline decided it (:attr:`FaceResult.verdict`: green real, amber
uncertain, red FAKE, grey not called yet), and the label spells the same
verdict in words (:attr:`Verdict.word`), so box and label cannot disagree.
A face the pipeline found too small to judge (:attr:`FaceResult.too_small`)
is grey and labelled "too small" whatever its verdict: that verdict is older
than the frame.
Colour is never the only cue: the label also gives the running score and a
small bar chart of the recent frame scores (red above the threshold the
result was judged with, green below), so the overlay reads the same in
greyscale and for colour-blind users.

All functions draw with a ``QPainter`` the caller has opened, in the painter's
device coordinates; a :class:`FrameToView` maps frame pixels onto them. They
are used by the main video view, the overlay-mode window and the snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPen, QRegion

from mesolive.types import FaceResult, FrameResult, Verdict

GREEN = QColor(40, 200, 70)
AMBER = QColor(255, 176, 0)
RED = QColor(230, 30, 40)
GREY = QColor(170, 170, 170)  # a face without a verdict yet

#: The colour band of each verdict, by name (the screenshot hook writes the name).
BANDS = {
    Verdict.REAL: "green",
    Verdict.UNCERTAIN: "amber",
    Verdict.FAKE: "red",
    Verdict.UNKNOWN: "grey",
}
_BAND_COLOURS = {"green": GREEN, "amber": AMBER, "red": RED, "grey": GREY}

#: Recent scores shown in a label's sparkline.
SPARK_POINTS = 24


def verdict_colour(verdict: Verdict) -> QColor:
    """The colour of a verdict (a copy: callers may change it)."""
    return QColor(_BAND_COLOURS[BANDS[verdict]])


def _shown(face: FaceResult) -> Verdict:
    """The verdict a face's colour shows: its live one, none when it is too small to judge."""
    return Verdict.UNKNOWN if face.too_small else face.verdict


def face_band(face: FaceResult) -> str:
    """The colour band of a face's box, by name (the screenshot hook writes it)."""
    return BANDS[_shown(face)]


def face_colour(face: FaceResult) -> QColor:
    """Colour of a face's box: its live verdict's, grey when it is too small to judge."""
    return verdict_colour(_shown(face))


def frame_score_colour(score: float, threshold: float) -> QColor:
    """A sparkline bar's colour: red for a fake frame by the paper's rule (above), else green."""
    return QColor(RED if score > threshold else GREEN)


def verdict_word(face: FaceResult) -> str:
    """The live verdict in words, or "too small" for a face too small to judge."""
    return "too small" if face.too_small else face.verdict.word


def label_text(face: FaceResult) -> str:
    """``"#3 FAKE 72%"``: track ID, the live verdict's word and the running fake %.

    ``"#3 too small"`` for a face too small to judge, ``"#3 …"`` before its first score.
    """
    if face.too_small:
        return f"#{face.track_id} {verdict_word(face)}"
    if face.n_scored <= 0:
        return f"#{face.track_id} …"
    return f"#{face.track_id} {face.verdict.word} {round(100 * face.running_score):d}%"


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


def frame_area(result: FrameResult, to_view: FrameToView) -> QRectF:
    """Where ``result``'s frame lies in view coordinates: labels are kept inside it."""
    return to_view.rect((0.0, 0.0, float(result.frame.width), float(result.frame.height)))


def detection_box(face: FaceResult) -> Sequence[float]:
    """A face's box as the detector found it, in frame pixels."""
    return face.xyxy


class OverlayPainter:
    """Draws a result's faces with per-track score histories.

    Parameters
    ----------
    line_width
        Box outline width in painter pixels (the label font scales with it).
    """

    def __init__(self, *, line_width: float = 3.0) -> None:
        self.line_width = line_width
        # Where a face's box goes, in frame pixels: its detection box, or (set by the
        # overlay where the capture sees it) a box clear of what the classifier reads.
        self.box_of: Callable[[FaceResult], Sequence[float]] = detection_box
        self._font = QFont()
        self._font.setBold(True)
        self._font.setPixelSize(max(11, round(4.5 * line_width)))

    def draw(
        self,
        painter: QPainter,
        result: FrameResult,
        to_view: FrameToView,
        history: Mapping[int, Sequence[float]] | None = None,
    ) -> list[QRectF]:
        """Draw every face of ``result``; returns the rectangles painted (boxes and labels).

        ``history`` maps a track ID to its recent fake scores (oldest first) for
        the sparkline; tracks without one get no sparkline.
        """
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setFont(self._font)
        painted: list[QRectF] = []
        fm = QFontMetricsF(painter.font())
        for face, box, label in self._layout(result, to_view, fm):
            scores = (history or {}).get(face.track_id)
            self._draw_face(painter, face, box, label, fm, scores, result.threshold)
            painted += [box, label]
        painter.restore()
        return painted

    def mask(self, result: FrameResult | None, to_view: FrameToView) -> QRegion:
        """The region :meth:`draw` paints, for a window shape without a compositor."""
        region = QRegion()
        if result is None:
            return region
        w = int(self.line_width) + 2
        for _face, box, label in self._layout(result, to_view, QFontMetricsF(self._font)):
            r = box.toAlignedRect()
            region = region.united(QRegion(r.x() - w, r.y() - w, r.width() + 2 * w, w * 2))
            region = region.united(QRegion(r.x() - w, r.bottom() - w, r.width() + 2 * w, w * 2))
            region = region.united(QRegion(r.x() - w, r.y() - w, w * 2, r.height() + 2 * w))
            region = region.united(QRegion(r.right() - w, r.y() - w, w * 2, r.height() + 2 * w))
            region = region.united(QRegion(label.toAlignedRect()))
        return region

    # -- internals ---------------------------------------------------------------

    def _layout(
        self, result: FrameResult, to_view: FrameToView, fm: QFontMetricsF
    ) -> list[tuple[FaceResult, QRectF, QRectF]]:
        """``(face, box, label)`` per face in view coordinates, as drawn and masked."""
        area = frame_area(result, to_view)
        placed: list[QRectF] = []
        out = []
        for face in result.faces:
            box = to_view.rect(self.box_of(face))
            placed.append(self._label_rect(face, box, fm, area, placed))
            out.append((face, box, placed[-1]))
        return out

    def _label_rect(
        self, face: FaceResult, box: QRectF, fm: QFontMetricsF, area: QRectF, placed: list[QRectF]
    ) -> QRectF:
        """Where ``face``'s label goes: above its box at the left edge; where that leaves
        ``area`` (the frame as shown) or covers a label ``placed`` before (a crowd: labels
        were drawn over each other), inside the box at its top, below it, or inside it at
        its bottom, the first that fits; moved left as far as needed to stay whole."""
        pad = 3.0
        h = fm.height() + 2 * pad
        w = fm.horizontalAdvance(label_text(face)) + 2 * pad + SPARK_POINTS * 2.0 + 4 + pad
        x = max(area.left(), min(box.left(), area.right() - w))
        tops = (box.top() - h, box.top(), box.bottom(), box.bottom() - h)
        fits = [QRectF(x, y, w, h) for y in tops if area.top() <= y <= area.bottom() - h]
        fits = fits or [QRectF(x, max(area.top(), box.top()), w, h)]
        return next((r for r in fits if not any(r.intersects(p) for p in placed)), fits[0])

    def _draw_face(
        self,
        painter: QPainter,
        face: FaceResult,
        box: QRectF,
        label: QRectF,
        fm: QFontMetricsF,
        history: Sequence[float] | None,
        threshold: float,
    ) -> None:
        colour = face_colour(face)
        pen = QPen(colour, self.line_width)
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(box)

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
        self._draw_sparkline(painter, spark, history, threshold)

    def _draw_sparkline(
        self,
        painter: QPainter,
        rect: QRectF,
        scores: Sequence[float] | None,
        threshold: float,
    ) -> None:
        """Bars of recent scores on a dark inset, with a tick at the threshold."""
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(20, 20, 20, 220))
        painter.drawRect(rect)
        inner = rect.adjusted(2, 2, -2, -2)
        values = list(scores or [])[-SPARK_POINTS:]
        bar_w = inner.width() / SPARK_POINTS
        x0 = inner.right() - bar_w * len(values)
        # One drawRects call per colour, not a call (and a brush) per bar: the
        # overlay is drawn on the GUI thread for every frame shown.
        bars: dict[int, list[QRectF]] = {}  # colour (ARGB) → its bars
        bottom, height, w = inner.bottom(), inner.height(), max(1.0, bar_w - 0.5)
        for i, v in enumerate(values):
            v = min(max(float(v), 0.0), 1.0)
            h = max(2.0, v * height)  # a low score still shows as a stub
            bar = QRectF(x0 + i * bar_w, bottom - h, w, h)
            bars.setdefault(frame_score_colour(v, threshold).rgba(), []).append(bar)
        for rgba, rects in bars.items():
            painter.setBrush(QColor.fromRgba(rgba))
            painter.drawRects(rects)
        y_thr = inner.bottom() - threshold * inner.height()
        painter.setPen(QPen(QColor(255, 255, 255, 160), 1.0, Qt.PenStyle.DotLine))
        painter.drawLine(QPointF(inner.left(), y_thr), QPointF(inner.right(), y_thr))
