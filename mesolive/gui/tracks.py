"""Per-track history of a session and the alert rule. Plain Python, no Qt.

The GUI keeps every scored point of every track for the timeline and the
session report, and decides when a face has stayed above the threshold long
enough to raise an alert. Scores themselves come from the pipeline; nothing
here detects or scores.
"""

from __future__ import annotations

import bisect
from array import array
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from mesolive.types import FaceResult, FrameResult, Verdict

#: Points kept per track (one an analysed frame): an hour at 30 analysed fps.
MAX_POINTS = 30 * 3600
#: Recent frame scores kept for a label's sparkline.
RECENT = 24


class TrackSeries:
    """Scored points of one track, stored column-wise (8 bytes a value).

    A long session keeps every point for the report without growing memory
    the way a list of objects would: six faces analysed 30 times a second
    take about 4 MB in ten minutes. Past ``max_points`` the oldest half is
    dropped. ``t`` (seconds since the session started, from
    ``Frame.t_capture``) never decreases, also when a file loops.
    """

    def __init__(self, max_points: int = MAX_POINTS) -> None:
        self.max_points = max_points
        self.t = array("d")
        self.frame = array("q")
        self.fake = array("d")
        self.running = array("d")
        self.window = array("d")
        self.models: dict[str, array] = {}

    def __len__(self) -> int:
        return len(self.t)

    def append(self, t: float, frame: int, face: FaceResult) -> None:
        n = len(self.t)
        if n >= self.max_points:
            self._drop(n // 2)
            n = len(self.t)
        self.t.append(t)
        self.frame.append(frame)
        self.fake.append(float(face.fake_score if face.fake_score is not None else "nan"))
        self.running.append(float(face.running_score))
        self.window.append(float(face.window_score))
        for name, value in face.model_scores.items():
            col = self.models.get(name)
            if col is None:  # a model seen late: earlier points have no score for it
                col = self.models[name] = array("d", [float("nan")] * n)
            col.append(float(value))
        for col in self.models.values():
            if len(col) < n + 1:
                col.append(float("nan"))

    def _drop(self, k: int) -> None:
        for col in (
            self.t,
            self.frame,
            self.fake,
            self.running,
            self.window,
            *self.models.values(),
        ):
            del col[:k]

    def since(self, t_start: float) -> int:
        """Index of the first point at or after ``t_start``."""
        return bisect.bisect_left(self.t, t_start)

    def rows(self) -> Iterator[TrackPoint]:
        names = list(self.models)
        for i in range(len(self.t)):
            yield TrackPoint(
                self.t[i],
                self.frame[i],
                self.fake[i],
                self.running[i],
                self.window[i],
                {m: self.models[m][i] for m in names if self.models[m][i] == self.models[m][i]},
            )


@dataclass(frozen=True)
class TrackPoint:
    """One analysed frame of one track (a row of :class:`TrackSeries`)."""

    t: float
    frame: int
    fake_score: float
    running_score: float
    window_score: float
    model_scores: dict[str, float]


@dataclass(frozen=True)
class Alert:
    """A face stayed at or above the threshold for ``seconds``."""

    track_id: int
    t: float
    seconds: float
    running_score: float

    @property
    def message(self) -> str:
        return (
            f"Face #{self.track_id} looks forged: fake score {round(100 * self.running_score)}% "
            f"for {self.seconds:.0f} s"
        )


@dataclass
class TrackRecord:
    """Everything the GUI knows about one track."""

    track_id: int
    first_seen: float
    last_seen: float
    last: FaceResult
    points: TrackSeries = field(default_factory=TrackSeries)
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    above_since: float | None = None
    alerted: bool = False
    alerts: int = 0

    @property
    def verdict(self) -> Verdict:
        return self.last.verdict


class TrackStore:
    """Collects track histories from frame results and raises alerts.

    Parameters
    ----------
    threshold
        A face is "above" while its running score is at or above this.
    alert_seconds
        How long a face must stay above before :meth:`update` returns an alert.
        One alert per stay: the face must fall below again to re-arm it.
    """

    def __init__(self, threshold: float = 0.5, alert_seconds: float = 3.0) -> None:
        self.threshold = threshold
        self.alert_seconds = alert_seconds
        self.tracks: dict[int, TrackRecord] = {}
        self._t0: float | None = None
        self.t_last = 0.0

    def clear(self) -> None:
        self.tracks.clear()
        self._t0 = None
        self.t_last = 0.0

    def time_of(self, result: FrameResult) -> float:
        """Seconds since the first result of this session."""
        if self._t0 is None:
            self._t0 = result.frame.t_capture
        return result.frame.t_capture - self._t0

    def update(self, result: FrameResult) -> list[Alert]:
        """Record one result; returns the alerts it raises (usually none)."""
        t = self.time_of(result)
        self.t_last = max(self.t_last, t)
        alerts = []
        for face in result.faces:
            rec = self.tracks.get(face.track_id)
            if rec is None:
                rec = TrackRecord(face.track_id, t, t, face)
                self.tracks[face.track_id] = rec
            rec.last = face
            rec.last_seen = t
            if face.fake_score is not None:
                rec.points.append(t, result.frame.index, face)
                rec.recent.append(float(face.fake_score))
            alert = self._check_alert(rec, face, t)
            if alert is not None:
                alerts.append(alert)
        return alerts

    def _check_alert(self, rec: TrackRecord, face: FaceResult, t: float) -> Alert | None:
        if face.n_scored <= 0 or face.running_score < self.threshold:
            rec.above_since = None
            rec.alerted = False
            return None
        if rec.above_since is None:
            rec.above_since = t
        held = t - rec.above_since
        if rec.alerted or held < self.alert_seconds:
            return None
        rec.alerted = True
        rec.alerts += 1
        return Alert(face.track_id, t, held, float(face.running_score))

    def recent_scores(self) -> dict[int, list[float]]:
        """Track ID → recent frame scores (oldest first), for the sparklines."""
        return {tid: list(rec.recent) for tid, rec in self.tracks.items()}
