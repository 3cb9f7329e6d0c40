"""Per-track history of a session. Plain Python, no Qt.

The GUI keeps every scored point of every track for the timeline and the
session report. Scores, verdicts and alerts come from the pipeline (its
:class:`~mesolive.track.judge.TrackJudge`); nothing here judges a face: an
alert is passed on when a face's alert count grows. A track the tracker folds
into an earlier one (``FrameResult.merged``: the same face, returned) gives
its history to that one and is forgotten, as the pipeline's records do.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

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
        for col in self._columns():
            del col[:k]

    def absorb(self, other: TrackSeries) -> None:
        """Take every point of ``other`` (a track folded into this one), kept in time order.

        The folded track usually began after this one was last seen; where
        their times interleave, all columns are sorted by ``t`` (stable).
        """
        n, m = len(self), len(other)
        for name in other.models.keys() - self.models.keys():
            self.models[name] = array("d", [math.nan] * n)
        for name, col in self.models.items():
            col.extend(other.models.get(name, array("d", [math.nan] * m)))
        for mine, theirs in (
            (self.t, other.t),
            (self.frame, other.frame),
            (self.fake, other.fake),
            (self.running, other.running),
            (self.window, other.window),
        ):
            mine.extend(theirs)
        if n and m and other.t[0] < self.t[n - 1]:
            order = np.argsort(np.frombuffer(self.t, np.float64), kind="stable")
            for col in self._columns():
                col[:] = array(col.typecode, np.frombuffer(col, col.typecode)[order].tobytes())
        if len(self) > self.max_points:
            self._drop(len(self) - self.max_points)

    def _columns(self) -> tuple[array, ...]:
        return (self.t, self.frame, self.fake, self.running, self.window, *self.models.values())

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
    """The pipeline raised an alert: a face's verdict has been FAKE for ``seconds``.

    ``t`` is seconds since the session's first result.
    """

    track_id: int
    t: float
    seconds: float
    running_score: float

    @property
    def message(self) -> str:
        return (
            f"Face #{self.track_id} looks forged: {Verdict.FAKE.word} for {self.seconds:.0f} s, "
            f"fake score {round(100 * self.running_score)}%"
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
    alerts: int = 0  # the pipeline's count for this track (FaceResult.alerts)
    alert_marks: list[tuple[float, int]] = field(default_factory=list)  # (t, frame) of each

    @property
    def verdict(self) -> Verdict:
        return self.last.verdict


class TrackStore:
    """Collects track histories from frame results and passes on the pipeline's alerts.

    Attributes
    ----------
    threshold
        The threshold of the newest result (None before the first): what
        the timeline draws, never set from anywhere else.
    t_last
        Seconds from the session's first result to its newest.
    """

    def __init__(self) -> None:
        self.tracks: dict[int, TrackRecord] = {}
        self.threshold: float | None = None
        self._t0: float | None = None
        self.t_last = 0.0

    def clear(self) -> None:
        self.tracks.clear()
        self.threshold = None
        self._t0 = None
        self.t_last = 0.0

    def time_of(self, result: FrameResult) -> float:
        """Seconds since the first result of this session."""
        if self._t0 is None:
            self._t0 = result.frame.t_capture
        return result.frame.t_capture - self._t0

    def update(self, result: FrameResult) -> list[Alert]:
        """Record one result; returns the alerts the pipeline raised in it (usually none)."""
        t = self.time_of(result)
        self.t_last = max(self.t_last, t)
        self.threshold = result.threshold
        for young, earlier in result.merged:  # before the faces: they carry the earlier IDs
            self.fold(young, earlier)
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
            if face.alerts > rec.alerts:
                rec.alerts = face.alerts
                rec.alert_marks.append((t, result.frame.index))
                alerts.append(Alert(face.track_id, t, face.fake_for, float(face.running_score)))
        return alerts

    def fold(self, young_id: int, earlier_id: int) -> None:
        """Give ``young_id``'s history to ``earlier_id`` (the same face, returned); forget it.

        Its points, recent scores and alert marks join the earlier track's;
        the alert count adds up as the pipeline's does, so no alert is raised
        again for the folded track's alerts.
        """
        young = self.tracks.pop(young_id, None)
        if young is None:
            return
        rec = self.tracks.get(earlier_id)
        if rec is None:  # the earlier face was never shown this session: the young one is it
            young.track_id = earlier_id
            self.tracks[earlier_id] = young
            return
        rec.points.absorb(young.points)
        rec.recent.extend(young.recent)  # the young track is the later one
        rec.first_seen = min(rec.first_seen, young.first_seen)
        if young.last_seen > rec.last_seen:
            rec.last_seen, rec.last = young.last_seen, young.last
        rec.alerts += young.alerts
        rec.alert_marks = sorted(rec.alert_marks + young.alert_marks)

    def recent_scores(self) -> dict[int, list[float]]:
        """Track ID → recent frame scores (oldest first), for the sparklines."""
        return {tid: list(rec.recent) for tid, rec in self.tracks.items()}
