"""Sources read from disk: a video file, a single image, a folder of images."""

from __future__ import annotations

import logging
import struct
import time
from pathlib import Path

import numpy as np

from mesolive.errors import InputError, SourceError
from mesolive.imageio import (
    VIDEO_EXTS,
    check_size,
    file_problem,
    list_images,
    read_still,
)
from mesolive.paths import opencv_name
from mesolive.sources._container import ends_early
from mesolive.sources._cv import as_bgr, quiet_opencv
from mesolive.sources.base import FrameSource
from mesolive.types import Frame, ReadStatus

log = logging.getLogger(__name__)

#: Frame rates used to pace stills when the caller gives none: a looped single
#: image is repeated so that running scores settle; a folder is a slide show.
IMAGE_FPS = 10.0
FOLDER_FPS = 1.0


def _gif_screen(path: Path) -> tuple[int, int] | None:
    """The logical screen size a GIF's header claims; None for other files."""
    with open(path, "rb") as f:
        head = f.read(10)
    if len(head) < 10 or head[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    w, h = struct.unpack("<HH", head[6:10])
    return w, h


def _check_file(path: Path) -> None:
    """A file that cannot be read, told without opening it (a FIFO would block FFmpeg)."""
    problem = file_problem(path)
    if problem is not None:
        raise SourceError(f"{path}: {problem}")


class VideoFileSource(FrameSource):
    """A video file decoded by OpenCV's FFmpeg backend.

    ``Frame.pts`` is the frame's presentation time in seconds. A pass that
    ends early is ``ERROR`` (truncated or corrupt file), not ``END``: when
    the file stops inside its container's own framing (a cut MP4, MKV,
    WebM, AVI, MPEG-TS or GIF, see :mod:`mesolive.sources._container`), or
    when decoding stops well short of the frame count in the header *and*
    the last timestamp is well short of the duration it implies. The count
    of many containers is duration × frame rate, an estimate that a
    variable-frame-rate file never reaches: its timestamps decide. Where
    neither can tell (no count in the header and framing that cannot show a
    cut, e.g. an MPEG-TS cut exactly at a packet boundary) the pass ends
    with ``END``.
    """

    is_live = False

    def __init__(self, path: str | Path, *, loop: bool = False, uri: str | None = None) -> None:
        self.path = Path(path)
        self.uri = uri or str(path)
        self.loop = loop
        self.fps = None
        self.frame_count: int | None = None
        self._cap = None
        self._index = 0
        self._in_pass = 0  # frames read since the last (re)start of the file
        self._pts: tuple[float | None, float | None] = (None, None)  # last two of this pass

    def check(self) -> None:
        _check_file(self.path)

    def open(self) -> None:
        import cv2

        self.close()
        self.check()  # before FFmpeg opens it: on a FIFO it would wait forever for a writer
        try:
            screen = _gif_screen(self.path)
            if screen is not None:  # FFmpeg allocates a GIF's whole canvas before any frame
                check_size(self.path, *screen, what="GIF canvas")
        except InputError as e:
            raise SourceError(str(e)) from e
        quiet_opencv()
        try:
            with opencv_name(self.path) as name:
                cap = cv2.VideoCapture(name, cv2.CAP_FFMPEG)
        except InputError as e:
            raise SourceError(str(e)) from e
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.path}: cannot open as a video (not a video, or truncated)")
        try:
            w, h = (int(cap.get(p)) for p in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
            check_size(self.path, w, h, what="video frame")
        except InputError as e:
            cap.release()
            raise SourceError(str(e)) from e
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if 0 < fps < 1000 else None
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if 0 < count < 2**31 else None
        self._cap = cap
        self._in_pass = 0
        self._pts = (None, None)

    def read(self, timeout: float) -> tuple[ReadStatus, Frame | None, str]:
        import cv2

        if self._cap is None:
            return ReadStatus.ERROR, None, f"{self.path}: not open"
        ok, image = self._cap.read()
        if not ok or image is None:
            if self._in_pass == 0:
                return ReadStatus.ERROR, None, f"{self.path}: no frame could be decoded"
            if shortfall := self._shortfall():
                return ReadStatus.ERROR, None, f"{self.path}: {shortfall}"
            if not self.loop:
                return ReadStatus.END, None, f"{self.path}: end of file"
            self.open()  # a reopen is the one rewind that works for every container
            return self.read(timeout)
        pts = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if pts <= 0 and self._in_pass > 0 and self.fps:
            pts = self._in_pass / self.fps
        frame = Frame(self._index, as_bgr(image), time.monotonic(), self.uri, pts)
        self._index += 1
        self._in_pass += 1
        self._pts = (self._pts[1], pts)
        return ReadStatus.OK, frame, ""

    def _shortfall(self) -> str:
        """Why this pass ended early ("stopped after N of M frames (…)"), else ""."""
        n, m = self._in_pass, self.frame_count
        if ends_early(self.path):
            of = f" of {m}" if m and n < m else ""  # a count made from the cut file says nothing
            return f"stopped after {n}{of} frames (file truncated or corrupt)"
        # Counts from the container can be estimates: allow 2 % or 2 frames.
        if m is None or n >= m - max(2, int(0.02 * m)):
            return ""
        prev, last = self._pts
        if self.fps and last is not None:
            # A count made from duration × rate: did the timestamps reach that duration?
            fps = self.fps
            step = max(1 / fps, last - prev) if prev is not None else 1 / fps
            duration = m / fps
            if last + step >= duration - max(2 / fps, 0.02 * duration):
                return ""
        return f"stopped after {n} of {m} frames (file truncated or corrupt)"

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageSource(FrameSource):
    """One image: a single frame then ``END``, or the same image forever with ``loop``."""

    is_live = False

    def __init__(
        self,
        path: str | Path,
        *,
        loop: bool = False,
        fps: float | None = None,
        uri: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.uri = uri or str(path)
        self.loop = loop
        self.fps = fps or IMAGE_FPS
        self._image: np.ndarray | None = None
        self._index = 0

    def check(self) -> None:
        _check_file(self.path)

    def open(self) -> None:
        try:
            self._image = read_still(self.path)
        except InputError as e:
            raise SourceError(str(e)) from e

    def read(self, timeout: float) -> tuple[ReadStatus, Frame | None, str]:
        if self._image is None:
            return ReadStatus.ERROR, None, f"{self.path}: not open"
        if self._index > 0 and not self.loop:
            return ReadStatus.END, None, f"{self.path}: end of image"
        # Each frame owns its pixels: a consumer may keep one while the next is made.
        frame = Frame(
            self._index, self._image.copy(), time.monotonic(), self.uri, self._index / self.fps
        )
        self._index += 1
        return ReadStatus.OK, frame, ""

    def close(self) -> None:
        self._image = None


class FolderSource(FrameSource):
    """The images of a folder (and its subfolders) in sorted path order.

    An image that cannot be decoded is skipped with a warning; ``END`` after
    the last one, or back to the first with ``loop``.
    """

    is_live = False

    def __init__(
        self,
        path: str | Path,
        *,
        loop: bool = False,
        fps: float | None = None,
        uri: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.uri = uri or str(path)
        self.loop = loop
        self.fps = fps or FOLDER_FPS
        self.files: list[Path] = []
        self.skipped: dict[Path, str] = {}  # images that could not be decoded, and why
        self._pos = 0
        self._index = 0

    def check(self) -> None:
        if not self.path.is_dir():
            raise SourceError(f"{self.path}: no such folder")

    def open(self) -> None:
        self.check()
        self.files, unusable = list_images(self.path)
        for path, problem in unusable.items():
            log.warning("skipping %s: %s", path, problem)
            self.skipped[path] = f"{path}: {problem}"
        if not self.files:
            videos = any(f.suffix.lower() in VIDEO_EXTS for f in self.path.iterdir())
            raise SourceError(
                f"{self.path}: folder holds videos but no images; open a video itself"
                if videos
                else f"{self.path}: folder holds no images or videos"
            )
        self._pos = 0

    def read(self, timeout: float) -> tuple[ReadStatus, Frame | None, str]:
        if not self.files:
            return ReadStatus.ERROR, None, f"{self.path}: not open"
        for _ in range(2 * len(self.files)):
            if self._pos >= len(self.files):
                if self._index == 0:
                    break  # a whole pass and not one image decoded
                if not self.loop:
                    return ReadStatus.END, None, f"{self.path}: end of folder"
                self._pos = 0
            path = self.files[self._pos]
            self._pos += 1
            if path in self.skipped:
                continue
            try:
                image = read_still(path)
            except InputError as e:
                log.warning("skipping %s", e)
                self.skipped[path] = str(e)
                continue
            frame = Frame(self._index, image, time.monotonic(), self.uri, self._index / self.fps)
            self._index += 1
            return ReadStatus.OK, frame, ""
        return ReadStatus.ERROR, None, f"{self.path}: none of the images can be read"

    def close(self) -> None:
        self.files = []
