"""ReadAhead: a file's frames decode in a thread of their own, all of them, in order."""

from __future__ import annotations

import _thread
import threading
from pathlib import Path

import numpy as np
import pytest

from mesolive.errors import SourceError
from mesolive.pipeline.readahead import ReadAhead
from mesolive.sources.file import VideoFileSource
from mesolive.sources.registry import make_source
from mesolive.types import ReadStatus

from .conftest import ctrl_c_as_from_a_terminal

CLIP = Path("videos") / "real" / "inthewild_obama.mp4"  # 49 frames


def _all(source) -> list[np.ndarray]:
    images = []
    while True:
        status, frame, message = source.read(5.0)
        if status is not ReadStatus.OK:
            assert status is ReadStatus.END, message
            return images
        images.append(frame.image)


def test_every_frame_arrives_in_order_as_the_source_reads_them(shared: Path) -> None:
    with make_source(str(shared / CLIP)) as direct:
        expected = _all(direct)
    ahead = ReadAhead(make_source(str(shared / CLIP)), depth=2)
    with ahead:
        got = _all(ahead)
    assert len(got) == len(expected) == 49
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    assert not ahead._thread.is_alive()


def test_an_open_failure_is_raised_by_open(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(bytes(range(256)) * 40)
    ahead = ReadAhead(make_source(str(junk)))
    with pytest.raises(SourceError, match="cannot open"):
        ahead.open()
    assert not ahead._thread.is_alive()


class _SlowToOpen(VideoFileSource):
    """A real video file that opens only when ``release`` is set, as a slow network share."""

    def __init__(self, path: Path, release: threading.Event) -> None:
        super().__init__(path)
        self.release = release

    def open(self) -> None:
        self.release.wait(10.0)
        super().open()


def test_ctrl_c_while_the_source_opens_stops_the_reader(shared: Path) -> None:
    """Interrupted in open(), no ``with`` exit runs: open() itself must stop its thread
    (a thread left inside FFmpeg when Python exits aborts the process)."""
    source = _SlowToOpen(shared / CLIP, threading.Event())

    def ctrl_c() -> None:  # the source opens only after Ctrl+C, however late this runs
        _thread.interrupt_main()
        source.release.set()

    ahead = ReadAhead(source)
    with ctrl_c_as_from_a_terminal():
        threading.Timer(0.1, ctrl_c).start()
        with pytest.raises(KeyboardInterrupt):
            ahead.open()
    assert not ahead._thread.is_alive()
    assert source._cap is None  # closed in the reader's thread


def test_closing_early_stops_the_reader_that_waits_on_a_full_queue(shared: Path) -> None:
    ahead = ReadAhead(make_source(str(shared / CLIP)), depth=1)
    ahead.open()
    status, frame, _ = ahead.read(5.0)
    assert status is ReadStatus.OK and frame is not None and frame.index == 0
    ahead.close(timeout=2.0)
    assert not ahead._thread.is_alive()


def test_a_live_source_is_refused() -> None:
    with pytest.raises(ValueError, match="live source"):
        ReadAhead(make_source("rtsp://127.0.0.1:9/live"))
