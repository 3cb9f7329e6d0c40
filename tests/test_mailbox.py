"""LatestSlot: newest item wins, drops are counted, close wakes everyone."""

from __future__ import annotations

import threading
import time

from mesolive.pipeline.mailbox import LatestSlot


def test_put_take_and_drops() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.take(0) is None
    slot.put(1)
    assert slot.take(0) == 1
    assert slot.take(0) is None
    assert [slot.put(2), slot.put(3), slot.put(4)] == [False, True, True]  # True: replaced one
    assert slot.drops == 2
    assert slot.take(0) == 4
    assert slot.drops == 2


def test_take_times_out() -> None:
    slot: LatestSlot[str] = LatestSlot()
    t0 = time.monotonic()
    assert slot.take(0.05) is None
    assert time.monotonic() - t0 >= 0.04


def test_close_hands_over_the_pending_item_once() -> None:
    slot: LatestSlot[str] = LatestSlot()
    slot.put("last")
    slot.close()
    assert slot.closed
    assert slot.put("ignored") is False
    assert slot.drops == 0
    assert slot.take(5) == "last"
    t0 = time.monotonic()
    assert slot.take(None) is None  # closed and empty: at once, even without a timeout
    assert slot.take(5) is None
    assert time.monotonic() - t0 < 1


def test_close_wakes_all_waiters() -> None:
    slot: LatestSlot[int] = LatestSlot()
    results: list[int | None] = []
    waiters = [threading.Thread(target=lambda: results.append(slot.take(None))) for _ in range(3)]
    for w in waiters:
        w.start()
    time.sleep(0.05)
    slot.close()
    for w in waiters:
        w.join(5)
    assert not any(w.is_alive() for w in waiters)
    assert results == [None, None, None]


def test_threads_newest_wins_and_counts_add_up() -> None:
    slot: LatestSlot[int] = LatestSlot()
    n = 5000
    taken: list[int] = []

    def consume() -> None:
        while (item := slot.take(None)) is not None:
            taken.append(item)
            if len(taken) % 50 == 0:
                time.sleep(0.001)  # a slow consumer

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(n):
        slot.put(i)
    slot.close()
    consumer.join(10)
    assert not consumer.is_alive()
    assert taken == sorted(taken)  # never an older item after a newer one
    assert taken[-1] == n - 1  # the last item put is never lost
    assert len(taken) + slot.drops == n
