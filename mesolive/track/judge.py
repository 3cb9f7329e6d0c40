"""One owner of "how fake": every tracked face's scores, verdicts and alerts.

The pipeline hands each face it tracks in a frame to :class:`TrackJudge`,
which keeps the track's running scores (:class:`RunningScore`), timeline and
alert state under one :class:`VerdictRule`, and returns the
:class:`FaceResult` that everything downstream shows. The GUI's box colour,
label word, table, timeline and alerts, its session report, and ``scan``'s
summaries read these values and decide nothing themselves. No models here,
so tests drive it (and the GUI behind it) with scores given by hand.

Alerts live here, not in the GUI, so that ``scan`` reports the same alerts
the app raises: a face whose live verdict has been FAKE without a break for
``rule.alert_seconds`` raises one; its verdict must leave FAKE to re-arm it.
Time is the source's (``Frame.pts``, else the capture time since the
input's first frame), so a file scanned faster than real time alerts at the
same moments of the video as when it is watched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mesolive.track.smoothing import RunningScore, Timeline, VerdictRule
from mesolive.types import FaceResult, Frame, TrackSummary, Verdict


@dataclass
class _TrackRecord:
    """What the judge keeps of one track (mutable; the pipeline's thread only)."""

    score: RunningScore
    timeline: Timeline
    first_frame: int
    last_frame: int
    frames_seen: int = 0
    too_small: bool = False  # too small to judge at the last analysed frame
    too_small_frames: int = 0  # analysed frames in which it was
    fake_since: float | None = None  # source time at which the live verdict turned FAKE
    alerted: bool = False  # this stay in FAKE has raised its alert
    alerts: list[tuple[int, float | None]] = field(default_factory=list)  # (frame, pts)


def source_time(frame: Frame) -> float:
    """Seconds in the source's time: its ``pts`` where it has one, else capture time."""
    return frame.pts if frame.pts is not None else frame.t_capture


class TrackJudge:
    """Judges tracked faces frame by frame under one rule.

    Parameters
    ----------
    rule
        Threshold, verdict bands and alert time; :meth:`set_rule` moves them.
    """

    def __init__(self, rule: VerdictRule) -> None:
        self.rule = rule
        self._records: dict[int, _TrackRecord] = {}
        self._t0: float | None = None  # capture time of the input's first frame

    def set_rule(self, rule: VerdictRule) -> None:
        """Judge with ``rule`` from the next face on; tracks keep their history.

        Frames already counted in the paper's share stay counted at the
        threshold they were scored under; a track's live verdict moves to the
        new bands at its next scored frame.
        """
        self.rule = rule
        for rec in self._records.values():
            rec.score.rule = rule

    def reset(self) -> None:
        """Forget every track (a new input begins)."""
        self._records = {}
        self._t0 = None

    def _report_time(self, frame: Frame) -> float:
        """Seconds for reports: the media's time, else (a live source without one, such as
        a UDP stream) the capture time since the input's first frame."""
        if self._t0 is None:
            self._t0 = frame.t_capture
        return frame.pts if frame.pts is not None else frame.t_capture - self._t0

    def face(
        self,
        track_id: int,
        frame: Frame,
        xyxy: np.ndarray,
        kps: np.ndarray,
        fake: float | None = None,
        model_scores: dict[str, float] | None = None,
        *,
        analysed: int,
        too_small: bool | None = None,
    ) -> FaceResult:
        """One tracked face in ``frame``, scored (``fake`` given) or carried between scores.

        Parameters
        ----------
        track_id
            The tracker's ID; a new one starts a record at this frame.
        frame
            The frame the face is in (its index and time).
        xyxy, kps
            (4,) box and (5, 2) keypoints, float, frame pixels.
        fake
            This frame's fake score in [0, 1] (mean over the models), or None
            on a frame that was tracked but not classified.
        model_scores
            Per-model fake scores of this frame.
        analysed
            Frames of the input analysed so far, this one included; an input
            shorter than ``rule.min_scored`` is judged on what it has.
        too_small
            On an analysed frame, whether the face was detected but too small
            to classify (``fake`` is then None); None on a frame between
            analysed ones: the track keeps its last value.
        """
        t = self._report_time(frame)
        rec = self._records.get(track_id)
        if rec is None:
            rec = _TrackRecord(RunningScore(self.rule), Timeline(), frame.index, frame.index)
            self._records[track_id] = rec
        s = rec.score
        models = dict(model_scores or {})
        if fake is not None:
            s.add(fake, models)
            rec.timeline.append(frame.index, t, fake)
            rec.last_frame = frame.index
        if too_small is not None:
            rec.too_small = too_small
        if too_small:
            rec.too_small_frames += 1
            rec.last_frame = frame.index  # detected, though not scored
        rec.frames_seen += 1
        fake_for = self._watch(rec, frame, t)
        return FaceResult(
            track_id=track_id,
            xyxy=np.array(xyxy, np.float32),
            kps=np.array(kps, np.float32),
            fake_score=None if fake is None else float(fake),
            model_scores=models,
            running_score=float(s.running),
            window_score=s.window_mean,
            fake_share=s.fake_share,
            n_scored=s.n_scored,
            verdict=s.verdict,
            track_verdict=self.rule.summary(s.n_fake, s.n_scored, analysed),
            fake_for=fake_for,
            alerts=len(rec.alerts),
            too_small=rec.too_small,
        )

    def fold(self, young_id: int, earlier_id: int) -> None:
        """Give ``young_id``'s history to ``earlier_id`` (the same face, returned); forget it.

        Its scored frames join the earlier track's scores and timeline (in
        frame order: the young track began after the earlier one was last
        seen; per-model scores are not kept per frame, so only the mean is),
        and the young track's current stay in FAKE (with its alert, if raised)
        continues under ``earlier_id``.
        """
        young = self._records.pop(young_id, None)
        rec = self._records.get(earlier_id)
        if young is None or rec is None:
            return
        for frame, pts, score in young.timeline.points():
            rec.score.add(score, {})
            rec.timeline.append(frame, pts, score)
        rec.frames_seen += young.frames_seen
        rec.too_small_frames += young.too_small_frames
        rec.too_small = young.too_small  # the face on screen is the young track's
        rec.last_frame = max(rec.last_frame, young.last_frame)
        rec.alerts.extend(young.alerts)
        # The face on screen is the young track's: its stay in FAKE goes on
        # under the earlier ID and must not alert a second time.
        rec.fake_since, rec.alerted = young.fake_since, young.alerted

    def _watch(self, rec: _TrackRecord, frame: Frame, t: float) -> float:
        """Advance the track's alert state at ``t`` (:meth:`_report_time`); returns how
        long it has been FAKE."""
        if rec.score.verdict is not Verdict.FAKE:
            rec.fake_since, rec.alerted = None, False
            return 0.0
        if rec.fake_since is None or t < rec.fake_since:  # earlier: a file started again
            rec.fake_since = t
        held = t - rec.fake_since
        # 1 µs of slack: pts are sums of float frame durations (1.4 - 0.4 < 1.0)
        if not rec.alerted and held >= self.rule.alert_seconds - 1e-6:
            rec.alerted = True
            rec.alerts.append((frame.index, t))
        return held

    def summaries(self, analysed: int) -> list[TrackSummary]:
        """Every track since the last :meth:`reset`, by ID, with the paper's verdict.

        A track needs ``rule.min_scored`` scored frames for a verdict, or all
        the ``analysed`` frames of a shorter input (a photo).
        """
        out = []
        for tid in sorted(self._records):
            rec = self._records[tid]
            s = rec.score
            out.append(
                TrackSummary(
                    track_id=tid,
                    first_frame=rec.first_frame,
                    last_frame=rec.last_frame,
                    frames_seen=rec.frames_seen,
                    n_scored=s.n_scored,
                    mean_score=float(s.mean),
                    fake_share=float(s.fake_share),
                    verdict=self.rule.summary(s.n_fake, s.n_scored, analysed),
                    timeline=rec.timeline.points(),
                    model_means=s.model_means(),
                    running_score=float(s.running),
                    last_verdict=s.verdict,
                    alerts=tuple(rec.alerts),
                    too_small_frames=rec.too_small_frames,
                )
            )
        return out
