"""Cyclic garbage is collected on the GUI thread only while a session's workers run."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

from mesolive.gui import gc_guard
from mesolive.gui.presenter import State

pytestmark = pytest.mark.gui


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_collects_on_the_gui_thread_while_held(qtbot) -> None:
    assert gc.isenabled()
    collected_on: list[str] = []
    kept: list[list[int]] = []
    gc_guard.hold()
    try:
        gc_guard.hold()  # nested holders: one timer, automatic collection off until the last
        gc_guard.release()
        assert not gc.isenabled()
        node = _Node()
        ref = weakref.finalize(node, lambda: collected_on.append(threading.current_thread().name))
        del node
        # a worker allocates far past the first generation's threshold: nothing is
        # collected there...
        worker = threading.Thread(target=lambda: kept.extend([0] for _ in range(20_000)))
        worker.start()
        worker.join()
        assert ref.alive
        # ...but by the timer, on the GUI thread
        qtbot.waitUntil(lambda: not ref.alive, timeout=5_000)
        assert collected_on == [threading.main_thread().name]
    finally:
        gc_guard.release()
    assert gc.isenabled()
    gc_guard.release()  # one release too many changes nothing
    assert gc.isenabled()


@pytest.mark.slow
def test_a_session_holds_the_collector_until_it_stops(window, qtbot, clip) -> None:
    assert window.start_source(str(clip))
    assert not gc.isenabled()
    qtbot.waitUntil(lambda: window.presenter.state is State.RUNNING, timeout=30_000)
    assert window.presenter.stop()
    assert gc.isenabled()
