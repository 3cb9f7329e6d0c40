"""Video files that end early say so: real clips made by ffmpeg, cut, corrupted, VFR, a FIFO.

Outcomes of a 60-frame clip cut at a byte offset (frames read, then the status):

=========  ============================  ===========================================
container  how the cut is seen           cut at 30 % / 70 % / 97 % of its bytes
=========  ============================  ===========================================
mp4 (*)    a box runs past the end       ERROR "stopped after N of 60 frames"
mkv, webm  the Segment runs past the end ERROR "stopped after N of 60 frames"
avi        the RIFF chunk runs past      ERROR "stopped after N of 60 frames"
ts         a partial 188-byte packet     ERROR "stopped after N frames" (the count in
                                         the header is made from the cut file itself)
gif        no trailer block (0x3B)       ERROR "stopped after N frames" (likewise)
=========  ============================  ===========================================

(*) with its index first (``+faststart``); with the index at the end (FFmpeg's
default) a cut MP4 does not open at all (``test_sources.py``).

Where nothing can tell, the end is ``END``: an MPEG-TS cut exactly at a
packet boundary, and a WebM written as a live stream (no duration, no sizes).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mesolive.errors import SourceError
from mesolive.sources.base import FrameSource
from mesolive.sources.registry import make_source
from mesolive.types import Frame, ReadStatus

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="needs the ffmpeg binary (apt ffmpeg)"
)

FRAMES = 60
CLIP = ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30", "-frames:v", str(FRAMES)]
#: container → encoder options; codecs FFmpeg has built in, but VP8 (libvpx) for WebM
CONTAINERS = {
    "mp4": ["-c:v", "mpeg4", "-q:v", "5", "-movflags", "+faststart"],
    "mkv": ["-c:v", "mpeg4", "-q:v", "5"],
    "webm": ["-c:v", "libvpx", "-b:v", "300k"],
    "avi": ["-c:v", "mpeg4", "-q:v", "5"],
    "ts": ["-c:v", "mpeg2video", "-q:v", "5"],
    "gif": [],
}
COUNT_KNOWN = {"mp4", "mkv", "webm", "avi"}  # the header's frame count survives a cut
CUTS = (0.3, 0.7, 0.97)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=60)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    out = {}
    for ext, options in CONTAINERS.items():
        out[ext] = folder / f"clip.{ext}"
        ffmpeg(*CLIP, *options, str(out[ext]))
    return out


def read_all(uri: Path) -> tuple[list[Frame], ReadStatus, str, FrameSource]:
    src = make_source(str(uri))
    frames: list[Frame] = []
    with src:
        while True:
            status, frame, message = src.read(1.0)
            if frame is None:
                return frames, status, message, src
            frames.append(frame)


def cut(path: Path, size: int, dest: Path) -> Path:
    dest.write_bytes(path.read_bytes()[:size])
    return dest


@pytest.mark.parametrize("ext", list(CONTAINERS))
def test_whole_file_ends_with_every_frame(clips: dict[str, Path], ext: str) -> None:
    frames, status, message, _ = read_all(clips[ext])
    assert status is ReadStatus.END, message
    assert len(frames) == FRAMES
    pts = [f.pts for f in frames]
    assert pts == sorted(pts)


@pytest.mark.parametrize("ext", list(CONTAINERS))
def test_cut_file_is_truncated_not_ended(clips: dict[str, Path], ext: str, tmp_path: Path) -> None:
    size = clips[ext].stat().st_size
    for fraction in CUTS:
        # an odd size: never a whole number of MPEG-TS packets (see the next test)
        path = cut(clips[ext], int(size * fraction) | 1, tmp_path / f"cut{fraction}.{ext}")
        frames, status, message, _ = read_all(path)
        assert status is ReadStatus.ERROR, (fraction, message)
        assert 0 < len(frames) < FRAMES
        of = f" of {FRAMES}" if ext in COUNT_KNOWN else ""
        assert (
            message == f"{path}: stopped after {len(frames)}{of} frames (file truncated or corrupt)"
        )


def test_corrupt_tail_is_caught_by_count_and_timestamps(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    # Whole framing (nothing cut), the second half of the bytes zeroed: the
    # decoder stops at half the count and at half the duration.
    data = bytearray(clips["mkv"].read_bytes())
    half = len(data) // 2
    data[half:] = bytes(len(data) - half)
    path = tmp_path / "zeroed.mkv"
    path.write_bytes(bytes(data))
    frames, status, message, _ = read_all(path)
    assert status is ReadStatus.ERROR
    assert f"stopped after {len(frames)} of {FRAMES} frames" in message
    assert len(frames) < FRAMES // 2 + 5


def test_variable_frame_rate_file_is_whole(tmp_path: Path) -> None:
    # 30 frames 1/30 s apart, then 30 frames 1/5 s apart: 6.8 s in all. The
    # header's count is duration × 30 fps (about 205), which it never reaches.
    path = tmp_path / "vfr.mkv"
    vfr = "setpts='if(lt(N,30),N/30,1+(N-30)/5)/TB'"
    ffmpeg(*CLIP, "-vf", vfr, "-fps_mode", "vfr", "-c:v", "mpeg4", "-q:v", "5", str(path))
    frames, status, message, src = read_all(path)
    assert status is ReadStatus.END, message
    assert len(frames) == FRAMES
    assert src.frame_count is not None and src.frame_count > 3 * FRAMES
    steps = [b.pts - a.pts for a, b in itertools.pairwise(frames)]  # type: ignore[operator]
    assert min(steps) == pytest.approx(1 / 30, abs=0.002)
    assert max(steps) == pytest.approx(1 / 5, abs=0.002)


def test_where_nothing_can_tell_the_end_is_end(clips: dict[str, Path], tmp_path: Path) -> None:
    # An MPEG-TS cut at a packet boundary: its duration is read from the cut
    # file's last timestamps and it has no other framing to show the cut.
    ts = clips["ts"]
    aligned = cut(ts, ts.stat().st_size // 2 // 188 * 188, tmp_path / "aligned.ts")
    # A WebM written as a live stream (to a pipe): no duration, no element sizes.
    live = tmp_path / "live.webm"
    with live.open("wb") as out:
        args = [*CLIP, *CONTAINERS["webm"], "-f", "webm", "-"]
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", *args], stdout=out, check=True)
    live_cut = cut(live, live.stat().st_size // 2, tmp_path / "live_cut.webm")
    for path in (aligned, live_cut):
        frames, status, message, _ = read_all(path)
        assert status is ReadStatus.END, message
        assert 0 < len(frames) < FRAMES


def test_fifo_named_like_a_video_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "x.mp4"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def open_it() -> None:
        try:
            make_source(str(fifo)).open()
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 (handed to the test's thread)
            outcome.append(e)

    t0 = time.monotonic()
    opener = threading.Thread(target=open_it)
    opener.start()
    opener.join(10)
    if opener.is_alive():  # blocked in FFmpeg waiting for a writer: give it one, then fail
        os.close(os.open(fifo, os.O_WRONLY))
        opener.join(10)
        pytest.fail("opening a FIFO blocked")
    assert time.monotonic() - t0 < 10  # refused up front (generous bound, not a timing test)
    assert isinstance(outcome[0], SourceError)
    assert str(outcome[0]) == f"{fifo}: is a named pipe (FIFO), not a regular file"
