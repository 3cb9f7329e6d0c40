"""The session's alerts: when, which face, how bad, for how long. Plain Python, no Qt.

:class:`AlertHistory` is fed the alerts as they reach the window and every
result after them; it does not decide what an alert is. From the result that
follows an alert it cuts a thumbnail of the face, then follows that face until
its live verdict (the pipeline's) is no longer FAKE, the face is lost or the
session ends, keeping the peak running score and the end time. Times are session
seconds, the clock of the alerts themselves (``Alert.t``). An alert of a track
the tracker folds into an earlier one (``FrameResult.merged``) goes on under
the earlier ID.

:func:`report_files` turns a snapshot of the records into the report's
``alerts.json``, ``alerts.csv`` and one PNG thumbnail per alert, written by
the report's worker thread.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, replace
from typing import IO

import cv2
import numpy as np

from mesolive.gui.report import Writer
from mesolive.gui.tracks import Alert
from mesolive.types import FaceResult, FrameResult, Verdict

log = logging.getLogger(__name__)

#: Longest side of a thumbnail, in pixels.
THUMB_SIZE = 96
#: A face not seen for this long is taken as gone and its alert ends.
LOST_AFTER_S = 2.0

CSV_FIELDS = [
    "number",
    "track_id",
    "t",
    "t_start",
    "t_end",
    "duration_s",
    "peak",
    "ended",
    "thumbnail",
]


@dataclass(frozen=True, eq=False)  # eq would compare thumbnails
class AlertRecord:
    """One alert of the session.

    Attributes
    ----------
    number
        1 for the session's first alert, and so on.
    track_id
        The face.
    t
        Session seconds when the alert was raised.
    t_start
        When the face's verdict became FAKE (``t`` minus ``Alert.seconds``).
    t_end
        When its verdict left FAKE, when it was last seen, or the newest
        result's time while the alert goes on.
    peak
        Highest running fake score from the alert to ``t_end``.
    ended
        ``""`` while the face is still fake; ``"below"``, ``"lost"`` or
        ``"session ended"`` once over.
    thumbnail
        The face at the alert, (h, w, 3) uint8 BGR, longest side
        :data:`THUMB_SIZE`, read-only; None when the face was not in the
        result after the alert.
    alert
        The alert as raised (its ``track_id`` is the one of that moment).
    """

    number: int
    track_id: int
    t: float
    t_start: float
    t_end: float
    peak: float
    ended: str
    thumbnail: np.ndarray | None
    alert: Alert

    @property
    def message(self) -> str:
        """The alert's text, naming the face by its ID now."""
        return replace(self.alert, track_id=self.track_id).message

    @property
    def duration(self) -> float:
        """Seconds the face stayed fake (so far, while it lasts)."""
        return max(0.0, self.t_end - self.t_start)


def face_thumbnail(image: np.ndarray, xyxy: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """The face box of a (H, W, 3) uint8 BGR frame, with a margin, scaled to ``size``.

    ``xyxy`` is (4,) in frame pixels. Returns an owned, read-only array.
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in xyxy[:4])
    m = 0.2 * max(x2 - x1, y2 - y1)
    xa, ya = max(0, int(x1 - m)), max(0, int(y1 - m))
    xb, yb = min(w, int(x2 + m) + 1), min(h, int(y2 + m) + 1)
    crop = image[ya:yb, xa:xb] if xb > xa and yb > ya else image
    s = size / max(crop.shape[:2])
    out = cv2.resize(
        crop,
        (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))),
        interpolation=cv2.INTER_AREA,
    )
    out = np.ascontiguousarray(out)  # resize already made a new array; never a view
    out.flags.writeable = False
    return out


class AlertHistory:
    """Alerts of one session and what followed each.

    Parameters
    ----------
    lost_after
        Seconds a face may be missing before its alert ends as ``"lost"``.
    """

    def __init__(self, lost_after: float = LOST_AFTER_S) -> None:
        self.lost_after = lost_after
        self.records: list[AlertRecord] = []
        self.version = 0  # bumped on every change, for views that redraw on change
        self.sessions = 0  # bumped by clear(): a view's selection belongs to one session
        self._pending: list[Alert] = []  # raised; their result has not come yet
        self._offset: float | None = None  # t_capture - session time

    def clear(self) -> None:
        self.records.clear()
        self._pending.clear()
        self._offset = None
        self.version += 1
        self.sessions += 1

    def add_alert(self, alert: Alert) -> None:
        """An alert as it reaches the window (before the result that raised it)."""
        self._pending.append(alert)

    def add_result(self, result: FrameResult) -> None:
        """Follow the open alerts through one result."""
        for young, earlier in result.merged:
            self._reattribute(young, earlier)
        pending, self._pending = self._pending, []
        if pending and self._offset is None:
            self._offset = result.frame.t_capture - pending[0].t
        if self._offset is None:
            return  # no alert yet this session
        t = result.frame.t_capture - self._offset
        faces = {f.track_id: f for f in result.faces}
        for alert in pending:
            face = faces.get(alert.track_id)
            thumb = face_thumbnail(result.frame.image, face.xyxy) if face is not None else None
            self.records.append(
                AlertRecord(
                    len(self.records) + 1,
                    alert.track_id,
                    alert.t,
                    alert.t - alert.seconds,
                    alert.t,
                    float(alert.running_score),
                    "",
                    thumb,
                    alert,
                )
            )
            self.version += 1
        for i, rec in enumerate(self.records):
            if not rec.ended:
                self._follow(i, rec, faces.get(rec.track_id), t)

    def _reattribute(self, young_id: int, earlier_id: int) -> None:
        """The young track proved to be an earlier face: its alerts are that face's."""
        for i, rec in enumerate(self.records):
            if rec.track_id == young_id:
                self.records[i] = replace(rec, track_id=earlier_id)
                self.version += 1

    def _follow(self, i: int, rec: AlertRecord, face: FaceResult | None, t: float) -> None:
        if face is None:
            if t - rec.t_end > self.lost_after:
                self.records[i] = replace(rec, ended="lost")
                self.version += 1
            return
        if face.verdict is not Verdict.FAKE:
            self.records[i] = replace(rec, t_end=t, ended="below")
        else:
            self.records[i] = replace(rec, t_end=t, peak=max(rec.peak, float(face.running_score)))
        self.version += 1

    def finish(self) -> None:
        """The session ended: every open alert ends with it."""
        self._pending.clear()
        for i, rec in enumerate(self.records):
            if not rec.ended:
                self.records[i] = replace(rec, ended="session ended")
                self.version += 1

    def snapshot(self) -> tuple[AlertRecord, ...]:
        """The records now (frozen, thumbnails read-only): safe to hand to another thread."""
        return tuple(self.records)


def thumbnail_name(rec: AlertRecord) -> str:
    return f"alert-{rec.number:02d}-face{rec.track_id}.png"


def _entry(rec: AlertRecord) -> dict[str, object]:
    return {
        "number": rec.number,
        "track_id": rec.track_id,
        "t": round(rec.t, 3),
        "t_start": round(rec.t_start, 3),
        "t_end": round(rec.t_end, 3),
        "duration_s": round(rec.duration, 3),
        "peak": round(rec.peak, 5),
        "ended": rec.ended or "ongoing",
        "thumbnail": thumbnail_name(rec) if rec.thumbnail is not None else "",
        "message": rec.message,
    }


def write_json(f: IO[bytes], records: tuple[AlertRecord, ...]) -> None:
    """``{"alerts": [{number, track_id, t, t_start, t_end, duration_s, peak, …}, …]}``."""
    f.write(json.dumps({"alerts": [_entry(r) for r in records]}, indent=1).encode())


def write_csv(f: IO[bytes], records: tuple[AlertRecord, ...]) -> None:
    """One row per alert, the JSON's fields but the message."""
    text = io.TextIOWrapper(f, encoding="utf-8", newline="")
    w = csv.DictWriter(text, CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in records:
        w.writerow(_entry(r))
    text.flush()
    text.detach()  # the caller closes ``f``


def _png_writer(image: np.ndarray) -> Writer:
    def write(f: IO[bytes]) -> None:
        ok, png = cv2.imencode(".png", image)
        if not ok:
            raise OSError("a thumbnail could not be encoded as PNG")
        f.write(png.tobytes())

    return write


def report_files(records: tuple[AlertRecord, ...]) -> dict[str, tuple[str, Writer]]:
    """The report's extra files for these alerts (none without one): key → (name, writer)."""
    if not records:
        return {}
    files: dict[str, tuple[str, Writer]] = {
        "alerts_json": ("alerts.json", lambda f: write_json(f, records)),
        "alerts_csv": ("alerts.csv", lambda f: write_csv(f, records)),
    }
    for r in records:
        if r.thumbnail is not None:
            files[f"alert_{r.number}"] = (thumbnail_name(r), _png_writer(r.thumbnail))
    return files
