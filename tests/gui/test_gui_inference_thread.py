"""The inference QThread on its own: real pipeline, bad frames, stop."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mesolive.gui.inference_thread import InferenceThread
from mesolive.pipeline.capture import CaptureThread
from mesolive.pipeline.interval import Interval
from mesolive.pipeline.mailbox import LatestSlot
from mesolive.pipeline.pipeline import PipelineConfig
from mesolive.types import Frame
from tests.test_capture import StallingCamera

pytestmark = pytest.mark.gui


def test_bad_frames_are_reported_rate_limited_and_the_thread_stops(qtbot):
    slot: LatestSlot[Frame] = LatestSlot()
    worker = InferenceThread(slot, PipelineConfig(models=("meso4-df",)))
    errors: list[str] = []
    worker.errored.connect(errors.append)
    with qtbot.waitSignal(worker.pipeline_ready, timeout=30_000) as ready:
        worker.start()
    assert ready.args[0].startswith(("onnxruntime", "tensorrt"))

    bad = np.zeros((64, 64), np.uint8)  # not (H, W, 3): the pipeline raises
    for i in range(3):
        slot.put(Frame(i, bad, 0.0, "test:"))
        qtbot.waitUntil(lambda n=i: worker.errors > n, timeout=5000)
    qtbot.waitUntil(lambda: len(errors) >= 1, timeout=5000)
    assert len(errors) == 1  # three failures, one message (ERROR_INTERVAL)
    assert "expected an (H, W, 3) uint8" in errors[0]

    good = np.zeros((360, 640, 3), np.uint8)
    with qtbot.waitSignal(worker.result_ready, timeout=5000) as got:
        slot.put(Frame(3, good, 0.0, "test:"))
    assert got.args[0].frame.index == 3 and got.args[0].faces == ()

    assert worker.stop(5.0)
    assert not worker.isRunning()
    # it logged from its own thread; nothing of it stays in threading's books
    assert all(
        t.name == "MainThread" or not t.name.startswith("Dummy") for t in threading.enumerate()
    )


def test_a_burst_after_a_stall_does_not_raise_the_auto_interval(qtbot):
    """A stream server that stalled sends what it held back at once, faster than any
    analysis; the slot's overwrites of that burst raised "analyse every N-th frame" as if
    the analysis were behind (it came back down one step every 3 s)."""
    slot: LatestSlot[Frame] = LatestSlot()
    capture = CaptureThread(StallingCamera(2.5, holds_back=True), slot)
    worker = InferenceThread(
        slot,
        PipelineConfig(models=("meso4-df",)),
        auto_every=True,
        drops=lambda: capture.drops_behind,
    )
    changes: list[Interval] = []
    worker.interval_changed.connect(changes.append)
    with qtbot.waitSignal(worker.pipeline_ready, timeout=30_000):
        worker.start()
    capture.start()
    try:
        qtbot.waitUntil(lambda: bool(capture.outages), timeout=30_000)  # the burst is over
        qtbot.wait(2000)  # and the windows that held it were judged
    finally:
        assert capture.stop()
        assert worker.stop(5.0)
    assert capture.drops - capture.drops_behind > 60  # most of the 125 frames held back
    assert worker.processed > 100
    assert changes == []
