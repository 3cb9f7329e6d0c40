"""The auto analysis interval, driven by a frame-exact model of the live loop.

``run`` replays what the GUI's inference thread sees: a source capturing at
``fps`` into a latest-frame slot (a frame not taken before the next one
arrives is dropped), and a worker that takes the newest frame, analyses it
(``t_analyse`` s) or carries the boxes (``t_carry`` s) as the pipeline's
``every`` says, and feeds each result to the controller.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from mesolive.pipeline.interval import Interval, IntervalController, ordinal

Cost = Callable[[float], tuple[float, float]]  # time → (t_analyse, t_carry)


def run(
    controller: IntervalController, cost: Cost, seconds: float, fps: float = 30.0
) -> tuple[list[tuple[float, Interval]], list[tuple[float, float, bool]]]:
    """(the changes with their times, every result as (time, latency, analysed))."""
    period = 1.0 / fps
    now, taken, drops, processed = 0.0, -1, 0, 0
    changes: list[tuple[float, Interval]] = []
    results: list[tuple[float, float, bool]] = []
    while now < seconds:
        newest = int(now / period + 1e-9)
        if newest <= taken:  # nothing new: wait for the next capture
            newest = taken + 1
            now = newest * period
        drops += newest - taken - 1
        taken = newest
        analysed = processed % controller.every == 0
        processed += 1
        t_analyse, t_carry = cost(now)
        busy = t_analyse if analysed else t_carry
        now += busy
        latency = now - newest * period
        results.append((now, latency, analysed))
        change = controller.observe(now, latency, busy, analysed, drops)
        if change is not None:
            changes.append((now, change))
    return changes, results


def constant(t_analyse: float, t_carry: float = 0.002) -> Cost:
    return lambda _t: (t_analyse, t_carry)


def test_a_fast_machine_analyses_every_frame() -> None:
    controller = IntervalController()
    changes, results = run(controller, constant(0.010, 0.001), 30)
    assert changes == [] and controller.every == 1
    assert all(analysed for _, _, analysed in results)
    assert controller.interval.text == "analysing every frame (auto)"


def test_a_slow_analysis_raises_the_interval_at_once_and_holds_it() -> None:
    # 80 ms per analysis at 30 fps: every frame analysed drops more than half of them
    controller = IntervalController(max_latency=0.15, max_drop_share=0.25)
    changes, results = run(controller, constant(0.080), 60)
    assert len(changes) == 1  # one step, after the first window, then steady
    t, interval = changes[0]
    assert t < 1.2 and interval.every == 5
    assert interval.text == "analysing every 5th frame to keep up"
    assert interval.reason == (
        "falling behind: latency 94 ms, 58% of frames dropped, 80 ms per analysed frame"
    )
    # and it keeps up: after the change, under both bounds
    after = [(lat, a) for when, lat, a in results if when > t + 1]
    assert sum(lat for lat, _ in after) / len(after) < 0.15
    captured = 60 * 30 - int((t + 1) * 30)
    assert 1 - len(after) / captured < 0.25


def test_when_the_load_goes_the_interval_comes_down_step_by_step() -> None:
    controller = IntervalController(hold=3)
    changes, _ = run(controller, lambda t: (0.080 if t < 20 else 0.012, 0.002), 60)
    steps = [interval.every for _, interval in changes]
    assert steps == [5, 4, 3, 2, 1]
    times = [t for t, _ in changes]
    assert all(b - a >= 3 for a, b in itertools.pairwise(times[1:]))  # held 3 windows each
    assert times[1] > 20 and times[-1] < 40  # down within ~15 s, then no flapping
    assert changes[-1][1].reason.startswith("room to spare: latency ")
    assert controller.every == 1


def test_load_near_a_bound_does_not_flap() -> None:
    # 60 ms analyses lose 0.8 frames each at 30 fps: N = 3 drops 21 %, N = 2 would drop 29 %
    controller = IntervalController()
    changes, _ = run(controller, constant(0.060), 120)
    assert [i.every for _, i in changes] == [3]


def test_the_same_observations_give_the_same_intervals() -> None:
    cost: Cost = lambda t: (0.05 + 0.04 * ((int(t) // 7) % 3), 0.003)  # noqa: E731
    first, _ = run(IntervalController(), cost, 60)
    second, _ = run(IntervalController(), cost, 60)
    assert first == second and len(first) >= 2


def test_a_pause_starts_a_new_window() -> None:
    controller = IntervalController(start=4, hold=1)  # light load: lowered at a window's end
    assert controller.observe(0.0, 0.010, 0.010, True, 0) is None
    assert controller.observe(0.5, 0.010, 0.010, True, 0) is None
    controller.reset_window()  # paused for 10 s, 300 frames discarded meanwhile
    for i in range(20):  # 20 light frames in 0.95 s: not yet a window
        assert controller.observe(10.0 + 0.05 * i, 0.003, 0.002, i % 4 == 0, 0) is None
    assert controller.every == 4


def test_capped_at_max_every() -> None:
    controller = IntervalController(max_every=4)
    changes, _ = run(controller, constant(0.300), 20)  # nothing keeps up: as far as allowed
    assert [i.every for _, i in changes] == [4]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_latency": 0}, "max_latency 0: expected seconds > 0"),
        ({"max_drop_share": 1.0}, "expected a share in"),
        ({"max_every": 0}, "start 1, max_every 0: expected 1 ≤ start ≤ max_every"),
        ({"start": 11}, "start 11, max_every 10"),
        ({"calm": 1.0}, "calm 1.0"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        IntervalController(**kwargs)  # type: ignore[arg-type]


def test_texts() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st",
        "111th",
    ]  # fmt: skip
    assert Interval(3).text == "analysing every 3rd frame to keep up"
    assert Interval(4, auto=False).text == "analysing every 4th frame"
    assert Interval(1, auto=False).text == "analysing every frame"
