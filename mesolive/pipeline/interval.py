"""The "auto" analysis interval: analyse every N-th frame, with N chosen to keep up.

Frames reach the pipeline through a latest-frame slot, so a slow analysis
never builds a queue: of the frames the capture delivers while the pipeline
is busy with one, all but the newest are dropped. Detection and
classification (an *analysed* frame) cost far more than moving the tracks'
boxes (a *carried* frame), so analysing every N-th frame lowers both the
share of frames dropped and the mean latency of the frames shown.

:class:`IntervalController` measures both, once per ``window`` seconds of
results, and raises N as soon as either is over its bound, straight to the
smallest N predicted to fit. It lowers N one step at a time, and only after
``hold`` windows in a row in which N - 1 is predicted to stay well inside
both bounds (``calm`` times each): the band between is the hysteresis that
keeps N from flapping. The predictions come from what the last window
measured:

- ``T_a``, ``T_c``: seconds the pipeline spent on an analysed and on a
  carried frame (``T_c`` is taken as 0 until a carried frame was seen);
- ``r``: frames captured per second (results plus drops, over the window);
- ``W``: the mean wait of a frame before the pipeline took it (latency
  minus processing time).

A frame that keeps the pipeline busy for ``T`` seconds drops about
``max(0, r T - 1)`` others, so with every N-th frame analysed a cycle of N
results drops ``D = max(0, r T_a - 1) + (N - 1) max(0, r T_c - 1)`` frames
(a share ``D / (N + D)``), and the mean latency is
``(T_a + (N - 1) T_c) / N + W``.

No Qt here: the GUI's inference thread feeds it one call per result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


def ordinal(n: int) -> str:
    """``1`` → ``"1st"``, ``2`` → ``"2nd"``, ``3`` → ``"3rd"``, ``11`` → ``"11th"``."""
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


@dataclass(frozen=True)
class Interval:
    """The interval in force and why; immutable, so it can cross threads.

    Attributes
    ----------
    every
        Analyse every ``every``-th frame (1: every frame).
    auto
        Chosen by :class:`IntervalController` (else set by the user).
    reason
        What the last window measured that led to it; '' for a set value or
        before the first change.
    """

    every: int
    auto: bool = True
    reason: str = ""

    @property
    def text(self) -> str:
        """One line for a status bar: ``"analysing every 3rd frame to keep up"``."""
        if self.every == 1:
            return "analysing every frame" + (" (auto)" if self.auto else "")
        why = " to keep up" if self.auto else ""
        return f"analysing every {ordinal(self.every)} frame{why}"


class IntervalController:
    """Chooses N, the analysis interval, from per-frame latency, busy time and drops.

    Parameters
    ----------
    max_latency
        Seconds: the mean latency (capture to result) to stay under.
    max_drop_share
        The share of captured frames that may be dropped, in [0, 1).
    max_every
        The largest N it chooses.
    window
        Seconds of results per decision (at least one analysed frame each).
    calm
        N is lowered only where N - 1 is predicted within ``calm`` times both bounds
    hold
        for this many windows in a row.
    start
        N until the first change.

    Feed it with :meth:`observe`, from one thread. It is deterministic: the
    same observations give the same intervals.
    """

    def __init__(
        self,
        *,
        max_latency: float = 0.15,
        max_drop_share: float = 0.25,
        max_every: int = 10,
        window: float = 1.0,
        calm: float = 0.5,
        hold: int = 3,
        start: int = 1,
    ) -> None:
        if not max_latency > 0:
            raise ValueError(f"max_latency {max_latency}: expected seconds > 0")
        if not 0 <= max_drop_share < 1:
            raise ValueError(f"max_drop_share {max_drop_share}: expected a share in [0, 1)")
        if not 1 <= start <= max_every:
            raise ValueError(
                f"start {start}, max_every {max_every}: expected 1 ≤ start ≤ max_every"
            )
        if not 0 < calm < 1:
            raise ValueError(f"calm {calm}: expected a factor in (0, 1)")
        self.max_latency = max_latency
        self.max_drop_share = max_drop_share
        self.max_every = max_every
        self.window = window
        self.calm = calm
        self.hold = max(1, hold)
        self.interval = Interval(start)
        self._calm_windows = 0
        self._start: float | None = None
        self._drops0 = 0
        self._n = [0, 0]  # carried, analysed frames in the window
        self._busy = [0.0, 0.0]  # seconds the pipeline spent on them
        self._latency = 0.0  # their latencies summed

    @property
    def every(self) -> int:
        return self.interval.every

    def observe(
        self, t: float, latency: float, busy: float, analysed: bool, dropped: int
    ) -> Interval | None:
        """Count one result; the new :class:`Interval` when N changes, else None.

        Parameters
        ----------
        t
            When the result was ready, seconds on a monotonic clock.
        latency
            Seconds from the frame's capture to its result.
        busy
            Seconds the pipeline spent on the frame (part of ``latency``).
        analysed
            Whether the frame was detected and classified (not carried).
        dropped
            Frames dropped so far because the pipeline was behind, a running
            count (``LatestSlot.drops``, or a ``CaptureThread``'s
            ``drops_behind``: not the bursts no speed would have saved).
        """
        if self._start is None:
            self._restart(t, dropped)
            return None  # the first result only starts the clock
        self._n[analysed] += 1
        self._busy[analysed] += max(0.0, busy)
        self._latency += max(0.0, latency)
        if t - self._start < self.window or not self._n[True]:
            return None
        change = self._decide(max(0, dropped - self._drops0), t - self._start)
        self._restart(t, dropped)
        return change

    def reset_window(self) -> None:
        """Forget the window being measured (after a pause: it says nothing of the load)."""
        self._start = None

    def _restart(self, t: float, dropped: int) -> None:
        self._start, self._drops0 = t, dropped
        self._n = [0, 0]
        self._busy = [0.0, 0.0]
        self._latency = 0.0

    def _decide(self, drops: int, elapsed: float) -> Interval | None:
        n_c, n_a = self._n
        n = n_c + n_a
        t_a = self._busy[True] / n_a
        t_c = self._busy[False] / n_c if n_c else 0.0
        rate = (n + drops) / elapsed
        wait = max(0.0, (self._latency - self._busy[False] - self._busy[True]) / n)
        latency, share = self._latency / n, drops / (drops + n)

        def predict(every: int) -> tuple[float, float]:
            lost = max(0.0, rate * t_a - 1) + (every - 1) * max(0.0, rate * t_c - 1)
            return (t_a + (every - 1) * t_c) / every + wait, lost / (every + lost)

        measured = (
            f"latency {1000 * latency:.0f} ms, {100 * share:.0f}% of frames dropped, "
            f"{1000 * t_a:.0f} ms per analysed frame"
        )
        every = self.every
        if latency > self.max_latency or share > self.max_drop_share:
            self._calm_windows = 0
            fits = (e for e in range(every + 1, self.max_every + 1) if self._within(predict(e), 1))
            target = next(fits, self.max_every)
            if target == every:
                return None  # at the largest N already
            return self._set(target, f"falling behind: {measured}")
        if every == 1 or not self._within(predict(every - 1), self.calm):
            self._calm_windows = 0
            return None
        self._calm_windows += 1
        if self._calm_windows < self.hold:
            return None
        self._calm_windows = 0
        return self._set(every - 1, f"room to spare: {measured}")

    def _within(self, predicted: tuple[float, float], factor: float) -> bool:
        latency, share = predicted
        return latency <= factor * self.max_latency and share <= factor * self.max_drop_share

    def _set(self, every: int, reason: str) -> Interval:
        self.interval = Interval(every, auto=True, reason=reason)
        log.info("%s (%s)", self.interval.text, reason)
        return self.interval
