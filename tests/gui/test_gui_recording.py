"""Recording: video files paced to real time, the recorder thread, the window's Record action.

Frames are real (the 720p six-face clip of ../shared); the overlay is drawn by
the real OverlayPainter, offscreen; files are decoded back with OpenCV to
check that they play. Bad input: a missing codec, an unwritable folder, a
nearly full disk, a source that ends while recording.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from mesolive.gui.exporter import FrameShot
from mesolive.gui.overlay import OverlayPainter
from mesolive.gui.presenter import Level, State
from mesolive.gui.recorder import qimage_to_bgr, render_shot
from mesolive.gui.tracks import Alert
from mesolive.gui.video_view import render_annotated
from mesolive.paths import opencv_name
from mesolive.pipeline.recording import QUEUE_SIZE, RecorderEvent, RecorderThread
from mesolive.pipeline.video_file import RecordingError, VideoFile
from mesolive.types import Frame
from tests.gui.conftest import make_face, make_result

pytestmark = pytest.mark.gui

SIZE = (1280, 720)
WAIT_S = 20.0
WAIT_MS = 60_000  # model loading on a loaded 2-core machine included
SHORT_CLIP = "videos/real/inthewild_obama.mp4"  # 4 s, 386x404, 12.5 fps


@pytest.fixture(scope="module")
def frames(shared) -> list[np.ndarray]:
    """The first 30 frames of the 720p clip, (720, 1280, 3) uint8 BGR, read-only."""
    cap = cv2.VideoCapture(str(shared / "videos/synthetic/group_pan_720p30.mp4"))
    out = []
    for _ in range(30):
        ok, img = cap.read()
        if not ok:
            pytest.skip("the 720p clip could not be read")
        img.flags.writeable = False
        out.append(img)
    cap.release()
    return out


def read_back(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        out.append(img)
    cap.release()
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-9))


def shot(image: np.ndarray, i: int, t: float) -> FrameShot:
    """A real frame with two hand-made faces: #1 FAKE (red), #2 real (green)."""
    faces = [make_face(1, (400, 150, 560, 350), 0.9), make_face(2, (800, 200, 930, 370), 0.1)]
    r = make_result(faces, index=i, t=t)
    r = dataclasses.replace(r, frame=Frame(i, image, t, "clip"))
    return FrameShot(r, 3.0, ((1, (0.2, 0.7, 0.9)), (2, (0.1, 0.1))))


def wait_for(events: list[RecorderEvent], kind: str) -> RecorderEvent:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for e in events:
            if e.kind == kind:
                return e
        time.sleep(0.02)
    raise AssertionError(f"no {kind!r} event: {events}")


def feed(rec: RecorderThread, shots: list[FrameShot]) -> None:
    """Submit every shot, waiting while the queue is full (the GUI drops instead)."""
    for s in shots:
        while not rec.submit(s):
            time.sleep(0.005)


# -- video files --------------------------------------------------------------------------


def test_a_video_file_plays_back_at_the_captured_pace(frames, tmp_path):
    vf = VideoFile(tmp_path / "rec", SIZE, 30.0)
    for i in range(15):  # analysed at 15 fps: each frame shown twice
        vf.write(frames[i], i / 15)
    t_pause = 14 / 15 + 5.0  # a 5 s pause is cut to 1 s
    for i in range(15):
        vf.write(frames[15 + i], t_pause + i / 30)
    vf.close()

    assert (vf.fourcc, vf.path.name) in {("avc1", "rec.mp4"), ("mp4v", "rec.mp4")}
    back = read_back(vf.path)
    assert len(back) == vf.frames == 29 + 30 + 14
    assert back[0].shape == (720, 1280, 3)
    assert psnr(back[0], frames[0]) > 28
    assert psnr(back[1], frames[0]) > 28  # the repeat
    assert psnr(back[-1], frames[29]) > 28

    again = VideoFile(tmp_path / "rec", SIZE, 30.0)  # never replaces a file
    again.write(frames[0], 0.0)
    again.close()
    assert again.path.name == "rec-2.mp4"
    assert len(read_back(vf.path)) == 73


@pytest.mark.skipif(sys.platform != "linux", reason="file names of any bytes: Linux")
def test_a_recording_folder_whose_name_is_not_utf8_is_written(tmp_path):
    """OpenCV's binding crashed the process (SIGSEGV) on such a name, losing the session:
    the recorder runs in a child here so that a crash fails this test alone."""
    folder = tmp_path / os.fsdecode(b"calls \xff")
    code = (
        "import os, sys, numpy as np\n"
        "from pathlib import Path\n"
        "from mesolive.pipeline.video_file import VideoFile\n"
        "vf = VideoFile(Path(os.fsdecode(sys.argv[1].encode(errors='surrogateescape')))"
        " / 'rec', (320, 180), 30.0)\n"
        "for i in range(10):\n"
        "    vf.write(np.full((180, 320, 3), 25 * i, np.uint8), i / 30)\n"
        "vf.close()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, os.fsencode(folder)],
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (path,) = folder.iterdir()
    assert path.suffix in (".mp4", ".avi")
    with opencv_name(path) as name:
        back = read_back(Path(name))
    assert len(back) == 10 and back[9].mean() > back[0].mean() + 100


def test_a_codec_probe_prints_nothing_of_its_own(tmp_path, capfd, monkeypatch):
    """Every recording began with FFmpeg's and OpenCV's "[ERROR…] Could not open codec"
    lines where the H.264 encoder is missing (as in OpenCV's Linux wheels)."""
    from mesolive.pipeline import video_file

    monkeypatch.setattr(video_file, "_broken_codecs", set())  # probe again in this process
    vf = VideoFile(tmp_path / "rec", SIZE, 30.0)
    vf.close()
    err = capfd.readouterr().err
    assert "Could not open codec" not in err and "[ERROR" not in err, err


def test_a_missing_codec_or_an_unwritable_folder_is_refused_with_the_reason(tmp_path):
    with pytest.raises(RecordingError, match="no video codec works here"):
        VideoFile(tmp_path / "a", SIZE, 30.0, codecs=(("ZZZZ", ".avi"),))
    assert list(tmp_path.iterdir()) == []  # no empty file left behind

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RecordingError, match=f"cannot write in {blocker / 'sub'}"):
        VideoFile(blocker / "sub" / "a", SIZE, 30.0)


def test_a_nearly_full_disk_stops_writing_and_leaves_a_file_that_plays(frames, tmp_path):
    # The disk counts as full 16 MB from now: Motion JPEG fills that in about 130 frames.
    free = shutil.disk_usage(tmp_path).free
    vf = VideoFile(tmp_path / "full", SIZE, 30.0, codecs=(("MJPG", ".avi"),), min_free=free - 2**24)

    def fill() -> None:
        for i in range(900):
            vf.write(frames[i % 30], i / 30)

    with pytest.raises(RecordingError, match="nearly full") as err:
        fill()
    vf.close()
    assert err.value.errno == errno.ENOSPC
    back = read_back(vf.path)
    assert 30 <= len(back) == vf.frames < 900
    assert psnr(back[-1], frames[(vf.frames - 1) % 30]) > 25


# -- the recorder thread ---------------------------------------------------------------


def test_the_recorder_draws_the_screens_overlay_off_the_gui_thread(qapp, frames, tmp_path):
    events: list[RecorderEvent] = []
    threads: set[int] = set()

    def render(s: FrameShot) -> tuple[float, np.ndarray]:
        threads.add(threading.get_ident())
        return render_shot(s)

    shots = [shot(frames[i], i, 100.0 + i / 30) for i in range(30)]
    rec: RecorderThread[FrameShot] = RecorderThread(render, events.append)
    rec.start()
    try:
        rec.record(tmp_path / "session")
        feed(rec, shots)
        rec.stop_recording()
        saved = wait_for(events, "saved")
    finally:
        assert rec.stop(5.0)
    assert threads and threading.get_ident() not in threads
    assert [e.kind for e in events] == ["started", "saved"]
    assert saved.path == events[0].path and saved.path.parent == tmp_path
    back = read_back(saved.path)
    assert len(back) == saved.frames == 30
    # the same drawing as on screen: the snapshot renderer, in the GUI thread
    screen = qimage_to_bgr(render_annotated(shots[10].result, OverlayPainter(line_width=3.0), {}))
    assert psnr(back[10], screen) > 28
    bare = psnr(back[10], frames[10])
    assert bare < psnr(back[10], screen) - 3, "the recording carries the overlay"


def test_a_full_queue_drops_frames_instead_of_waiting(qapp, frames):
    events: list[RecorderEvent] = []
    rec: RecorderThread[FrameShot] = RecorderThread(render_shot, events.append)
    shots = [shot(frames[i % 30], i, i / 30) for i in range(90)]
    t0 = time.perf_counter()
    accepted = sum(rec.submit(s) for s in shots)  # nothing takes from the queue yet
    assert time.perf_counter() - t0 < 0.5
    assert accepted == QUEUE_SIZE and rec.dropped == 90 - QUEUE_SIZE
    rec.start()
    assert rec.stop(5.0)
    assert events == []  # nothing asked to be written: nothing was


def test_an_alert_keeps_a_clip_of_the_seconds_around_it(qapp, frames, tmp_path):
    events: list[RecorderEvent] = []
    rec: RecorderThread[FrameShot] = RecorderThread(render_shot, events.append)
    shots = [shot(frames[i % 30], i, i / 30) for i in range(120)]
    rec.start()
    try:
        rec.set_clips(tmp_path, 1.0)
        feed(rec, shots[:60])
        time.sleep(0.5)  # let the worker take what is queued
        assert list(tmp_path.iterdir()) == []  # held in memory only
        rec.mark(7)
        feed(rec, shots[60:])
        clip = wait_for(events, "clip")
    finally:
        assert rec.stop(5.0)
    assert clip.path is not None and re.fullmatch(
        r"mesolive-alert-\d{8}-\d{6}-face7", clip.path.stem
    )
    back = read_back(clip.path)
    assert 55 <= len(back) == clip.frames <= 65  # 1 s before, 1 s after, at 30 fps
    assert [p.name for p in tmp_path.iterdir()] == [clip.path.name]


# -- the window --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_recording_ends_with_its_source_and_the_file_plays(window, qtbot, shared, tmp_path):
    clip = shared / SHORT_CLIP
    if not clip.is_file():
        pytest.skip(f"missing {clip}")
    window.controls.every.setValue(2)
    assert window.start_source(str(clip))
    qtbot.waitUntil(lambda: window.presenter.state is State.RUNNING, timeout=WAIT_MS)
    window.recording.set_recording(True, tmp_path)
    assert window.act_record.isChecked() and window.recording.recorder.recording
    qtbot.waitUntil(lambda: window.presenter.state is State.STOPPED, timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: any(e.kind == "saved" for e in window.recording.recorder.events), timeout=WAIT_MS
    )
    assert not window.act_record.isChecked()
    saved = next(e for e in window.recording.recorder.events if e.kind == "saved")
    assert saved.path is not None and saved.path.parent == tmp_path
    assert window.statusBar().currentMessage().startswith("Recording saved to")
    back = read_back(saved.path)
    assert len(back) == saved.frames > 10
    assert back[0].shape == (404, 386, 3)


@pytest.mark.slow
def test_an_unwritable_folder_is_one_message_and_the_session_goes_on(window, qtbot, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert window.start_source("test:?faces=2&fps=30&size=640x360")
    qtbot.waitUntil(lambda: window.presenter.state is State.RUNNING, timeout=WAIT_MS)
    window.recording.set_recording(True, blocker / "sub")
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=WAIT_MS)
    assert window.banner.level is Level.ERROR
    assert window.banner.label.text().startswith(f"Could not record: cannot write in {blocker}")
    assert not window.act_record.isChecked() and not window.recording.recorder.recording

    window.recording.set_alert_clips(True, 2.0, blocker / "clips")  # the same for alert clips
    qtbot.waitUntil(lambda: "alert clips" in window.banner.label.text(), timeout=WAIT_MS)
    assert window.banner.label.text().startswith(f"No alert clips: cannot write in {blocker}")
    assert (
        not window.alerts.panel.clips.isChecked() and window.recording.recorder.clip_folder is None
    )

    results = window.presenter.counters.results
    qtbot.waitUntil(lambda: window.presenter.counters.results > results + 5, timeout=WAIT_MS)
    assert window.presenter.state is State.RUNNING


@pytest.mark.slow
def test_the_record_action_stops_a_recording_while_the_session_goes_on(window, qtbot, tmp_path):
    assert window.start_source("test:?faces=2&fps=30&size=640x360")
    qtbot.waitUntil(lambda: window.presenter.state is State.RUNNING, timeout=WAIT_MS)
    window.recording.set_recording(True, tmp_path)
    qtbot.waitUntil(
        lambda: any(e.kind == "started" for e in window.recording.recorder.events), timeout=WAIT_MS
    )
    results = window.presenter.counters.results
    qtbot.waitUntil(lambda: window.presenter.counters.results > results + 30, timeout=WAIT_MS)
    window.act_record.trigger()  # what Ctrl+R does while recording
    assert not window.recording.recorder.recording
    qtbot.waitUntil(
        lambda: any(e.kind == "saved" for e in window.recording.recorder.events), timeout=WAIT_MS
    )
    saved = next(e for e in window.recording.recorder.events if e.kind == "saved")
    back = read_back(saved.path)
    assert len(back) == saved.frames >= 30 and back[0].shape == (360, 640, 3)
    assert window.presenter.state is State.RUNNING


@pytest.mark.slow
def test_a_new_session_while_recording_goes_into_a_file_of_its_own(window, qtbot, tmp_path):
    """Another source (here of another size) was drawn stretched into the first file."""
    assert window.start_source("test:?faces=2&fps=30&size=640x360")
    qtbot.waitUntil(lambda: window.presenter.state is State.RUNNING, timeout=WAIT_MS)
    window.recording.set_recording(True, tmp_path)
    results = window.presenter.counters.results
    qtbot.waitUntil(lambda: window.presenter.counters.results > results + 20, timeout=WAIT_MS)
    assert window.start_source("test:?faces=1&fps=30&size=320x240")
    qtbot.waitUntil(lambda: window.presenter.state is State.RUNNING, timeout=WAIT_MS)
    results = window.presenter.counters.results
    qtbot.waitUntil(lambda: window.presenter.counters.results > results + 20, timeout=WAIT_MS)
    assert window.recording.recorder.recording and window.act_record.isChecked()
    window.act_record.trigger()
    events = window.recording.recorder.events
    qtbot.waitUntil(lambda: sum(e.kind == "saved" for e in events) == 2, timeout=WAIT_MS)
    first, second = (e.path for e in events if e.kind == "saved")
    assert first != second and first.parent == second.parent == tmp_path
    assert read_back(first)[0].shape == (360, 640, 3)
    assert read_back(second)[0].shape == (240, 320, 3)


@pytest.mark.slow
def test_quitting_while_recording_finalises_the_file(window, qtbot, tmp_path):
    assert window.start_source("test:?faces=2&fps=30&size=640x360")
    qtbot.waitUntil(lambda: window.presenter.state is State.RUNNING, timeout=WAIT_MS)
    window.recording.set_recording(True, tmp_path / "rec")
    qtbot.waitUntil(
        lambda: any(e.kind == "started" for e in window.recording.recorder.events), timeout=WAIT_MS
    )
    results = window.presenter.counters.results
    qtbot.waitUntil(lambda: window.presenter.counters.results > results + 15, timeout=WAIT_MS)
    assert window.shutdown()  # what closing the window, Ctrl+Q and SIGTERM do
    (path,) = (tmp_path / "rec").iterdir()
    back = read_back(path)
    assert len(back) >= 15 and back[-1].shape == (360, 640, 3)


@pytest.mark.slow
def test_a_new_session_finalises_the_alert_clips_of_the_last_one(window, qtbot, tmp_path):
    """With clips on and no recording, a clip still open when the source changed went on
    with the new source's frames (a second of the old frame repeated, then the new one),
    and the frames held for the next clip were the old source's."""
    assert window.start_source("test:?faces=2&fps=30&size=640x360")
    qtbot.waitUntil(lambda: window.presenter.state is State.RUNNING, timeout=WAIT_MS)
    window.recording.set_alert_clips(True, 1.0, tmp_path)
    results = window.presenter.counters.results
    qtbot.waitUntil(lambda: window.presenter.counters.results > results + 45, timeout=WAIT_MS)
    window.presenter.alert_raised.emit(Alert(1, 2.0, 1.0, 0.9))  # as the pipeline raises one
    assert window.start_source("test:?faces=1&fps=30&size=320x240")
    events = window.recording.recorder.events
    qtbot.waitUntil(lambda: any(e.kind == "clip" for e in events), timeout=WAIT_MS)
    clip = next(e for e in events if e.kind == "clip")
    # the second held before the alert, and nothing after it: the next frame is another session's
    assert clip.frames <= 31
    assert len(read_back(clip.path)) == clip.frames
    qtbot.waitUntil(lambda: window.presenter.state is State.RUNNING, timeout=WAIT_MS)
    assert window.recording.recorder.clip_folder == tmp_path  # clips stay on
