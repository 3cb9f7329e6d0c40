"""Immutable data that crosses threads (capture → inference → GUI).

Everything here is a frozen dataclass of numpy arrays and plain values. A
producer never mutates an array after it put it into one of these: the
consumer may hold it for as long as it likes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class ReadStatus(enum.Enum):
    """Outcome of :meth:`FrameSource.read` (as jetson-utils' capture status)."""

    OK = "ok"
    TIMEOUT = "timeout"  # nothing new yet; try again
    END = "end"  # the source is finished (end of file, last image)
    ERROR = "error"  # the source failed; ``message`` says why


@dataclass(frozen=True)
class Frame:
    """One captured frame.

    Attributes
    ----------
    index
        Running number from the source, starting at 0 (gaps mean drops).
    image
        (H, W, 3) uint8 BGR, C-contiguous, owned by this frame.
    t_capture
        ``time.monotonic()`` when the frame was read.
    source
        The URI it came from.
    pts
        Presentation time in seconds within the source (files), else None.
    """

    index: int
    image: np.ndarray
    t_capture: float
    source: str = ""
    pts: float | None = None

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True)
class Outage:
    """A stretch in which a live source delivered no frames, as the capture thread saw it.

    It runs from the last frame before a failure (a dropped stream, an
    unplugged camera, a read that never returned) to the first frame after
    the source came back. Times are seconds since the capture started
    (:attr:`CaptureThread.started_at` is that moment in wall-clock time).

    Attributes
    ----------
    start, end
        Seconds since the capture started. When the capture ended while the
        source was still gone, ``end`` is that moment and ``recovered`` False.
    frames_lost
        Frames the source would have delivered meanwhile at its nominal frame
        rate and never did; None where the rate is unknown.
    reason
        The failure that began it, one line, passwords redacted.
    recovered
        Whether frames came again before the capture ended.
    frames_late
        Frames of the outage that came after it, in a burst faster than the
        frame rate (a stream server sending what it held back while it
        stalled): read, so not in ``frames_lost``; those the analysis had no
        time for are in the capture's drops, like any frame overwritten
        before it was taken. Each frame of the outage is counted once.
    """

    start: float
    end: float
    frames_lost: int | None
    reason: str = ""
    recovered: bool = True
    frames_late: int = 0

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class FaceDetections:
    """Faces found in one frame.

    Attributes
    ----------
    xyxy
        (n, 4) float32 boxes, x1 y1 x2 y2 in original-frame pixels.
    score
        (n,) float32 detector confidence in [0, 1].
    kps
        (n, 5, 2) float32 keypoints (x, y) in original-frame pixels, in SCRFD's
        order: left eye, right eye, nose, left mouth corner, right mouth corner
        (left/right as seen in the image).
    """

    xyxy: np.ndarray
    score: np.ndarray
    kps: np.ndarray

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @staticmethod
    def empty() -> FaceDetections:
        return FaceDetections(
            np.zeros((0, 4), np.float32),
            np.zeros((0,), np.float32),
            np.zeros((0, 5, 2), np.float32),
        )


FAKE_THRESHOLD = 0.5
"""The fake-score threshold unless one is asked for (``--threshold``, the app's setting):
a face whose score is above it counts as fake in that frame (the paper's rule, also for
``classify``'s label, ``evaluate``'s accuracies and a validation's), and the live verdict's
bands are centred on it (:class:`mesolive.track.smoothing.VerdictRule`)."""


class Verdict(enum.Enum):
    """How fake a face is: the one vocabulary of the app, the reports and ``scan``.

    The value is the word written to JSON and CSV; :attr:`word` is the same
    word as a person reads it (labels, table, alerts, plots), FAKE in
    capitals so that it stands out. The pipeline's
    :class:`~mesolive.track.smoothing.VerdictRule` decides which applies; the
    GUI's colours are one per verdict.
    """

    UNKNOWN = "unknown"  # too few scored frames yet
    REAL = "real"
    UNCERTAIN = "uncertain"
    FAKE = "fake"

    @property
    def word(self) -> str:
        """The verdict as shown to a person: ``real``, ``uncertain``, ``FAKE``, ``unknown``."""
        return self.value.upper() if self is Verdict.FAKE else self.value


@dataclass(frozen=True)
class FaceResult:
    """One tracked face in one frame.

    Attributes
    ----------
    track_id
        Stable ID across frames (1, 2, …).
    xyxy
        (4,) float32 box in original-frame pixels.
    kps
        (5, 2) float32 keypoints in original-frame pixels.
    fake_score
        This frame's fake score in [0, 1] (mean over the models asked for), or
        None where this frame was tracked but not classified.
    model_scores
        Per-model fake score of this frame, e.g. ``{"meso4-df": 0.12}``.
    running_score
        Exponential moving average of the fake score.
    window_score
        Mean fake score over the last N classified frames.
    fake_share
        The paper's video-level rule: share of this track's classified frames
        with a fake score above 0.5.
    n_scored
        Frames of this track classified so far.
    verdict
        The live call from ``running_score``, with hysteresis (see
        :class:`~mesolive.track.smoothing.VerdictRule`): what the box colour,
        the label and the alerts show.
    track_verdict
        The whole track's call so far by the paper's share (``fake_share``),
        as ``scan`` reports it in :attr:`TrackSummary.verdict`.
    fake_for
        Seconds this face's live verdict has been FAKE without a break (0 when
        it is not FAKE), in the source's time (``Frame.pts``, else
        ``Frame.t_capture``).
    alerts
        Alerts raised for this track so far: one each time ``fake_for``
        reached the rule's ``alert_seconds``; the verdict must leave FAKE to
        re-arm it.
    too_small
        The face was too small to judge at the track's last analysed frame
        (its span below the pipeline's ``min_face_span``): tracked, not
        classified, so ``verdict`` and the scores are older than that frame.
        Frames between analysed ones keep the track's last value.
    """

    track_id: int
    xyxy: np.ndarray
    kps: np.ndarray
    fake_score: float | None
    model_scores: dict[str, float]
    running_score: float
    window_score: float
    fake_share: float
    n_scored: int
    verdict: Verdict
    track_verdict: Verdict = Verdict.UNKNOWN
    fake_for: float = 0.0
    alerts: int = 0
    too_small: bool = False


@dataclass(frozen=True)
class StageTimings:
    """Seconds spent per stage for one frame (0 where a stage was skipped)."""

    detect: float = 0.0
    crop: float = 0.0
    classify: float = 0.0
    track: float = 0.0

    @property
    def total(self) -> float:
        return self.detect + self.crop + self.classify + self.track


@dataclass(frozen=True)
class FrameResult:
    """Everything the pipeline knows about one frame.

    ``frame.image`` is the unannotated frame; overlays are drawn by the GUI.
    ``latency`` is seconds from ``frame.t_capture`` to the end of processing.
    ``threshold`` is the fake-score threshold the faces' verdicts were judged
    with (a keyword; it moves while a session runs): whatever draws or reports
    a result reads it here, never a copy of its own. ``merged`` lists
    ``(young_id, earlier_id)`` for each track that proved at this frame to be
    an earlier face returning (:mod:`mesolive.track.iou_tracker`): the young
    ID is gone for good and its history now belongs to the earlier one.

    Raises
    ------
    ValueError
        ``threshold`` outside (0, 1), or ``faces`` not a tuple.
    """

    frame: Frame
    faces: tuple[FaceResult, ...]
    timings: StageTimings
    latency: float
    analysed: bool  # detection + classification ran on this frame (see --every)
    backend: str = ""
    dropped: int = 0  # frames the capture dropped so far
    extra: dict[str, float] = field(default_factory=dict)
    threshold: float = field(kw_only=True)
    merged: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(
                f"FrameResult.threshold: expected a value in (0, 1), got {self.threshold}"
            )
        if not isinstance(self.faces, tuple):
            raise ValueError(
                f"FrameResult.faces: expected a tuple, got {type(self.faces).__name__}"
            )


@dataclass(frozen=True)
class TrackSummary:
    """One track over everything the pipeline saw since its last reset.

    Attributes
    ----------
    track_id
        The face's stable ID.
    first_frame, last_frame
        Frame indices of its first and last detection (scored or too small).
    frames_seen
        Frames in which it was shown (detected, or carried between analysed
        frames with ``--every``).
    n_scored
        Frames in which it was classified.
    mean_score
        Mean fake score over the scored frames (mean over the models asked for).
    fake_share
        The paper's video-level rule: share of scored frames with a fake
        score above the threshold.
    verdict
        From ``fake_share``: FAKE when clearly more than half the scored
        frames are fake (share above 0.6 and its 95 % interval above 0.5),
        REAL when clearly fewer, else UNCERTAIN; UNKNOWN with too few scored
        frames (see :meth:`mesolive.track.smoothing.VerdictRule.summary`).
    timeline
        ``(frame_index, pts, fake_score)`` per scored frame (``pts`` in
        seconds, None where the source has none); very long tracks keep every
        2nd/4th/… point.
    model_means
        Mean fake score per model, e.g. ``{"meso4-df": 0.21}``.
    running_score
        The exponential moving average at the track's last scored frame.
    last_verdict
        The live verdict at the track's last frame (what the app's label
        showed last; :attr:`FaceResult.verdict`).
    alerts
        ``(frame_index, pts)`` of each alert raised for the track (its live
        verdict FAKE for the rule's ``alert_seconds``); ``pts`` None where the
        source has none.
    too_small_frames
        Analysed frames in which it was detected but too small to judge (its
        span below the pipeline's ``min_face_span``), so not scored.
    """

    track_id: int
    first_frame: int
    last_frame: int
    frames_seen: int
    n_scored: int
    mean_score: float
    fake_share: float
    verdict: Verdict
    timeline: tuple[tuple[int, float | None, float], ...] = ()
    model_means: dict[str, float] = field(default_factory=dict)
    running_score: float = 0.0
    last_verdict: Verdict = Verdict.UNKNOWN
    alerts: tuple[tuple[int, float | None], ...] = ()
    too_small_frames: int = 0

    def score_fields(self) -> dict[str, float | None]:
        """``mean_score``, ``fake_share`` and ``running_score`` as reports write them
        (6 decimals); None (JSON null) for a track never scored, which has no score."""
        values = {
            "mean_score": self.mean_score,
            "fake_share": self.fake_share,
            "running_score": self.running_score,
        }
        return {k: round(v, 6) if self.n_scored else None for k, v in values.items()}
