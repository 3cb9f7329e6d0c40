"""Per-track running scores and a verdict with hysteresis.

One frame's fake score from MesoNet is noisy (compression, motion blur, a
half-closed eye), so a face is judged on its history:

- an exponential moving average (``running``), which follows changes within
  about ``1 / alpha`` scored frames and drives the live verdict;
- the mean of the last ``window`` scored frames (``window_mean``);
- the paper's video-level rule, the share of scored frames with a fake
  score above the threshold (``fake_share``), which is the track's summary.

The live verdict has three bands around the threshold (real below
``threshold - margin``, fake above ``threshold + margin``, uncertain between)
and is sticky: leaving the current band needs the score to pass its edge by
``hysteresis``, so a score hovering at an edge does not flicker. It stays
UNKNOWN until ``min_scored`` frames were scored. This live verdict is the one
owner of "how fake" a face looks now: the app's box colour, label word, table
and alerts all show it (:mod:`mesolive.track.judge`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from mesolive.types import FAKE_THRESHOLD, Verdict


@dataclass(frozen=True)
class VerdictRule:
    """Bands and stickiness of the verdict (fake scores in [0, 1]).

    Attributes
    ----------
    threshold
        Fake-score threshold: the centre of the uncertain band, and the
        per-frame cut of the paper's share (0.5 in the paper).
    margin
        Half-width of the uncertain band; narrowed to half of the room
        left between the threshold and 0 or 1, so that with a threshold near
        either end (0.9: a fake score above 1.0 was needed) both "real" and
        "fake" can still be reached. Thresholds from 0.2 to 0.8 keep it whole.
    hysteresis
        How far past a band edge a score must go to change the verdict; at
        most half the (narrowed) margin.
    min_scored
        Scored frames needed before any verdict.
    alert_seconds
        How long a face's live verdict must stay FAKE before it raises an
        alert (seconds of the source's time).
    """

    threshold: float = FAKE_THRESHOLD
    margin: float = 0.1
    hysteresis: float = 0.05
    min_scored: int = 5
    alert_seconds: float = 3.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.margin < 0 or self.hysteresis < 0 or self.min_scored < 1:
            raise ValueError("margin and hysteresis must be >= 0 and min_scored >= 1")
        if not self.alert_seconds >= 0:  # also NaN
            raise ValueError(f"alert_seconds must be >= 0, got {self.alert_seconds}")

    def band(self, value: float, current: Verdict = Verdict.UNKNOWN) -> Verdict:
        """REAL, UNCERTAIN or FAKE for ``value``, sticky to ``current``."""
        t = self.threshold
        margin = min(self.margin, t / 2, (1.0 - t) / 2)
        lo, hi = t - margin, t + margin
        h = min(self.hysteresis, margin / 2)
        if current is Verdict.REAL:
            lo, hi = lo + h, hi + h
        elif current is Verdict.FAKE:
            lo, hi = lo - h, hi - h
        elif current is Verdict.UNCERTAIN:
            lo, hi = lo - h, hi + h
        if value < lo:
            return Verdict.REAL
        if value > hi:
            return Verdict.FAKE
        return Verdict.UNCERTAIN

    def summary(self, n_fake: int, n_scored: int, enough: int | None = None) -> Verdict:
        """A finished track's verdict from the paper's share of fake frames.

        The paper calls a video fake when most of its frames are. Here the
        share ``n_fake / n_scored`` must also clear the ``margin`` band
        around 0.5, and its 95 % Wilson interval must exclude 0.5, so that a
        short track whose frames hover at the threshold (5 of 8 frames at
        0.51) is UNCERTAIN rather than FAKE. Consecutive frames are
        correlated, so the interval is optimistic for long tracks; the band
        keeps a margin there.

        ``enough`` is the number of analysed frames of the whole input: an
        input shorter than ``min_scored`` (a photo) is judged on what it has,
        without the interval (one frame cannot be significant).
        """
        short = enough is not None and enough < self.min_scored
        need = max(1, enough or 1) if short else self.min_scored
        if n_scored < need:
            return Verdict.UNKNOWN
        share = n_fake / n_scored
        lo, hi = (share, share) if short else wilson_interval(n_fake, n_scored)
        if share < 0.5 - self.margin and hi < 0.5:
            return Verdict.REAL
        if share > 0.5 + self.margin and lo > 0.5:
            return Verdict.FAKE
        return Verdict.UNCERTAIN


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial share ``k / n`` (95 % for ``z`` = 1.96)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


class Timeline:
    """A track's scored frames, ``(frame index, pts, fake score)``, bounded in memory.

    Points go into a growing float64 array; past ``max_points`` every other
    point is dropped (the whole span is kept at half the resolution), so a
    face followed for hours costs at most ``max_points × 24`` bytes.
    """

    def __init__(self, max_points: int = 1 << 15) -> None:
        self.max_points = max(16, int(max_points)) // 2 * 2
        self._data = np.empty((64, 3), np.float64)
        self._n = 0
        self.stride = 1  # keep one point in ``stride`` (doubles on each thinning)
        self._skip = 0

    def append(self, frame: int, pts: float | None, score: float) -> None:
        self._skip += 1
        if self._skip < self.stride:
            return
        self._skip = 0
        if self._n == len(self._data):
            if self._n >= self.max_points:
                # Keep points 0, 2, 4, …; this point (index n, even) is on the new grid.
                kept = self._data[0 : self._n : 2].copy()
                self._data[: len(kept)] = kept
                self._n = len(kept)
                self.stride *= 2
            else:
                grown = np.empty((min(2 * len(self._data), self.max_points), 3), np.float64)
                grown[: self._n] = self._data[: self._n]
                self._data = grown
        self._data[self._n] = (frame, np.nan if pts is None else pts, score)
        self._n += 1

    def __len__(self) -> int:
        return self._n

    def points(self) -> tuple[tuple[int, float | None, float], ...]:
        """The kept points; ``pts`` is None where the source gave none."""
        return tuple(
            (int(f), None if np.isnan(p) else float(p), float(s))
            for f, p, s in self._data[: self._n]
        )


class RunningScore:
    """Scores of one track; updated once per scored frame.

    Parameters
    ----------
    rule
        Verdict bands.
    alpha
        EMA weight of the newest score (0.2: ~5 frames of memory).
    window
        Frames in the windowed mean.
    """

    def __init__(self, rule: VerdictRule, *, alpha: float = 0.2, window: int = 15) -> None:
        self.rule = rule
        self.alpha = float(alpha)
        self.running = 0.0
        self.n_scored = 0
        self.n_fake = 0
        self.total = 0.0
        self.verdict = Verdict.UNKNOWN
        self._window: deque[float] = deque(maxlen=max(1, int(window)))
        self.model_totals: dict[str, float] = {}

    def add(self, score: float, model_scores: dict[str, float] | None = None) -> None:
        """Fold in one frame's fake score (mean over models) and per-model scores."""
        s = float(score)
        self.running = s if self.n_scored == 0 else self.running + self.alpha * (s - self.running)
        self.n_scored += 1
        self.total += s
        self.n_fake += s > self.rule.threshold
        self._window.append(s)
        for name, v in (model_scores or {}).items():
            self.model_totals[name] = self.model_totals.get(name, 0.0) + float(v)
        if self.n_scored >= self.rule.min_scored:
            self.verdict = self.rule.band(self.running, self.verdict)

    @property
    def window_mean(self) -> float:
        return float(sum(self._window) / len(self._window)) if self._window else 0.0

    @property
    def mean(self) -> float:
        return self.total / self.n_scored if self.n_scored else 0.0

    @property
    def fake_share(self) -> float:
        """The paper's rule: share of scored frames with a fake score above the threshold."""
        return self.n_fake / self.n_scored if self.n_scored else 0.0

    def model_means(self) -> dict[str, float]:
        n = self.n_scored or 1
        return {k: v / n for k, v in self.model_totals.items()}
