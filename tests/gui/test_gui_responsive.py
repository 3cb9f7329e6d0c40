"""What keeps the GUI thread free: frames scaled by the inference thread, a cheap timeline,
report files written by a child process, and the stall sampler that found the causes."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest

from mesolive.gui import hooks as gui_hooks
from mesolive.gui.presenter import State
from mesolive.gui.report import SessionInfo, take_snapshot
from mesolive.gui.report_plot import envelope
from mesolive.gui.stalls import StallSampler
from mesolive.gui.timeline import TimelinePanel
from mesolive.gui.tracks import TrackStore
from mesolive.gui.video_view import FrameScaler, scale_to_qimage, scaled_size
from mesolive.types import Frame
from tests.gui.conftest import make_face, make_result
from tests.gui.test_gui_overlay import qimage_to_rgb

pytestmark = pytest.mark.gui

WAIT_MS = 30_000  # model loading included
SOURCE = "test:?faces=3&fps=30&size=640x360"


# -- frames scaled off the GUI thread ---------------------------------------------------------


def test_the_scaler_hands_the_view_the_frame_it_would_have_scaled():
    image = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), np.uint8)
    frame = Frame(7, image, 1.25, "test:")
    scaler = FrameScaler()
    scaler.prepare(frame)
    area = (900, 600, 1.0)
    size = scaled_size(1280, 720, area)
    assert size == (900, 506)  # fit, aspect kept
    assert scaler.take((7, 1.25, *size)) is None, "nothing is prepared before the view has a size"

    scaler.area = area
    scaler.prepare(frame)
    img = scaler.take((7, 1.25, *size))
    assert img is not None and (img.width(), img.height()) == size
    expected = qimage_to_rgb(scale_to_qimage(image, size, 1.0))
    assert np.array_equal(qimage_to_rgb(img), expected)
    assert scaler.take((8, 1.25, *size)) is None  # another frame
    assert scaler.take((7, 1.25, 800, 450)) is None  # another size


@pytest.mark.slow
def test_a_running_session_paints_frames_the_inference_thread_scaled(window, qtbot):
    window.controls.every.setValue(1)
    assert window.start_source(SOURCE)
    qtbot.waitUntil(lambda: window.presenter.state is State.RUNNING, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.video.painted >= 30, timeout=WAIT_MS)
    video = window.video
    # a paint that came after the next frames were already scaled may scale its own
    assert video.scaled_here <= video.painted // 5, (video.scaled_here, video.painted)
    window.stop()


# -- the timeline's refresh stays small --------------------------------------------------------


def _two_minutes(store: TrackStore, faces: int = 6, fps: int = 30) -> None:
    """Random scores (the widest a line can be drawn), every frame analysed."""
    rng = np.random.default_rng(1)
    for i in range(120 * fps):
        scores = rng.random(faces)
        tracks = [make_face(k + 1, (0, 0, 4, 4), scores[k]) for k in range(faces)]
        store.update(make_result(tracks, index=i, t=i / fps, size=(8, 8)))


def test_the_timeline_moves_its_axis_in_steps_and_cuts_long_curves(qtbot):
    store = TrackStore()
    _two_minutes(store)
    panel = TimelinePanel(store)
    qtbot.addWidget(panel)
    panel.resize(380, 600)
    panel.show()
    qtbot.waitExposed(panel)

    assert panel.x_range(5.0) == (0.0, 60.0)
    assert panel.x_range(61.0) == (10.0, 70.0)
    assert panel.x_range(70.0) == (10.0, 70.0)
    panel.refresh(store)
    assert panel.plot.getViewBox().viewRange()[0] == pytest.approx([60.0, 120.0])

    columns = panel.plot.getViewBox().width()
    assert 50 < columns < 500
    for curve in panel.curves.values():
        x, y = curve.getData()
        assert len(x) <= 2 * columns + 2, "at most two points per pixel column"
        assert x[0] == 60.0 and x[-1] == pytest.approx(119.0 + 29 / 30)
        assert y.max() > 0.99 and y.min() < 0.01  # peaks and dips survive


def test_the_envelope_keeps_every_columns_extremes_in_time_order():
    rng = np.random.default_rng(2)
    t = np.arange(10_000, dtype=np.float64)
    y = rng.random(10_000)
    tt, yy = envelope(t, y, 100)
    assert len(tt) <= 202 and np.all(np.diff(tt) > 0)
    assert (tt[0], tt[-1]) == (0.0, 9999.0)  # a live line ends at the newest score
    for run_t, run_y in zip(np.array_split(t, 100), np.array_split(y, 100), strict=True):
        inside = (tt > 0) & (tt < 9999) & (tt >= run_t[0]) & (tt <= run_t[-1])
        assert set(yy[inside]) == {run_y.min(), run_y.max()}
    short = np.arange(150, dtype=np.float64)
    assert envelope(short, short, 100)[0] is short  # already small enough: as it is


# -- report files: a child process writes them ----------------------------------------------------

_CHILD_CHECK = """
import pickle, sys
from pathlib import Path
from mesolive.gui.report import export_session
snap = pickle.load(open(sys.argv[1], "rb"))
out = export_session(Path(sys.argv[2]), snap)
print(sorted(out), "matplotlib" in sys.modules)
"""


@pytest.mark.slow
def test_the_timeline_files_are_written_by_a_child_process(tmp_path):
    """matplotlib never loads into the app (its Agg renderer held the GIL for seconds)."""
    store = TrackStore()
    for i in range(30):
        store.update(make_result([make_face(1, (0, 0, 10, 10), 0.3)], index=i, t=i / 30))
    info = SessionInfo("test:", ("meso4-df",), 0.5, "x", time.time())
    snap_file = tmp_path / "snap.pickle"
    snap_file.write_bytes(pickle.dumps(take_snapshot(info, store)))
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD_CHECK, str(snap_file), str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "['csv', 'json', 'png'] False"
    assert (tmp_path / "r" / "timeline.png").stat().st_size > 1000


# -- the stall sampler -----------------------------------------------------------------------------


def _spin_in_our_code(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_the_sampler_names_where_the_watched_thread_stalled():
    sampler = StallSampler(late_after=0.04, poll=0.005)
    sampler.start()
    try:
        for busy in (False, True):
            for _ in range(5):
                sampler.beat(busy)
                time.sleep(0.01)
            _spin_in_our_code(0.2)
            sampler.beat(busy)
            time.sleep(0.03)  # the sampler sees the tick that ended the stall
            sampler.beat(busy)
    finally:
        sampler.stop()
    for busy in (False, True):
        s = sampler.summary(busy=busy)
        assert s["stalls"] == 1, s
        assert 180 <= s["stalled_ms"] <= 400
        assert s["sites"][0]["stack"][0].startswith("_spin_in_our_code (test_gui_responsive.py:")
        # the loop's lines are sites of their own
        spinning = sum(x["ms"] for x in s["sites"] if x["stack"][0].startswith("_spin_in_our_code"))
        assert spinning >= 0.8 * s["stalled_ms"], s["sites"]
        if sys.platform.startswith("linux"):  # the kernel's figures
            sched = s["scheduled"]
            assert sched["ms"] == s["stalled_ms"]
            # it ran or queued for a core; it waited only for the GIL the sampler took to look
            assert sched["on_cpu_ms"] + sched["runnable_ms"] >= 0.6 * sched["ms"], sched


def test_the_stats_hook_reports_the_stall_sites_of_the_gui_thread(window, qtbot, tmp_path):
    path = tmp_path / "stats.json"
    env = {gui_hooks.ENV_STATS: str(path), gui_hooks.ENV_STALL_SITES: "1"}
    hooks = gui_hooks.TestingHooks(window, env=env)
    window.presenter.take_result(make_result([make_face(1, (100, 100, 300, 300), 0.2)]))
    qtbot.waitUntil(lambda: window.video.painted == 1, timeout=5000)  # starts the sampler
    qtbot.wait(50)
    _spin_in_our_code(0.2)  # a slow slot of ours
    qtbot.wait(100)
    hooks.write_stats()
    sites = json.loads(path.read_text())["stall_sites"]["running"]
    assert sites["stalls"] >= 1
    spinning = [s for s in sites["sites"] if s["stack"][0].startswith("_spin_in_our_code")]
    assert sum(s["ms"] for s in spinning) >= 150, sites["sites"]
