"""Sources read from disk: a video file, a single image, a folder of images."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from mesolive.errors import SourceError
from mesolive.sources._cv import as_bgr, quiet_opencv
from mesolive.sources.base import FrameSource
from mesolive.types import Frame, ReadStatus

log = logging.getLogger(__name__)

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

#: Frame rates used to pace stills when the caller gives none: a looped single
#: image is repeated so that running scores settle; a folder is a slide show.
IMAGE_FPS = 10.0
FOLDER_FPS = 1.0


def decode_image(path: Path) -> np.ndarray:
    """Decode one image file to (H, W, 3) uint8 BGR, EXIF orientation applied.

    Raises
    ------
    SourceError
        The file is missing, unreadable or not an image OpenCV can decode.
    """
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)  # also handles non-ASCII paths on Windows
    except OSError as e:
        raise SourceError(f"{path}: cannot read ({e.strerror or e})") from e
    # IMREAD_COLOR: 8-bit BGR whatever the file holds, with the EXIF rotation applied.
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise SourceError(f"{path}: not an image, or truncated")
    return as_bgr(image)


class VideoFileSource(FrameSource):
    """A video file decoded by OpenCV's FFmpeg backend.

    ``Frame.pts`` is the frame's presentation time in seconds. A read that
    fails well before the frame count the container announces is reported as
    ``ERROR`` (truncated or corrupt file) rather than ``END``.
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

    def open(self) -> None:
        import cv2

        self.close()
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such file or folder")
        if not self.path.is_file():
            raise SourceError(f"{self.path}: not a file")
        quiet_opencv()
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.path}: cannot open as a video (not a video, or truncated)")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if 0 < fps < 1000 else None
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None
        self._cap = cap
        self._in_pass = 0

    def read(self, timeout: float) -> tuple[ReadStatus, Frame | None, str]:
        import cv2

        if self._cap is None:
            return ReadStatus.ERROR, None, f"{self.path}: not open"
        ok, image = self._cap.read()
        if not ok or image is None:
            if self._in_pass == 0:
                return ReadStatus.ERROR, None, f"{self.path}: no frame could be decoded"
            if self._truncated():
                return (
                    ReadStatus.ERROR,
                    None,
                    f"{self.path}: stopped after {self._in_pass} of {self.frame_count} frames "
                    "(file truncated or corrupt)",
                )
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
        return ReadStatus.OK, frame, ""

    def _truncated(self) -> bool:
        if self.frame_count is None:
            return False
        # Counts from the container can be estimates: allow 2 % or 2 frames.
        return self._in_pass < self.frame_count - max(2, int(0.02 * self.frame_count))

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

    def open(self) -> None:
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such file or folder")
        self._image = decode_image(self.path)

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

    def open(self) -> None:
        if not self.path.is_dir():
            raise SourceError(f"{self.path}: no such folder")
        self.files = sorted(
            f for f in self.path.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS
        )
        if not self.files:
            raise SourceError(
                f"{self.path}: folder holds no images ({', '.join(sorted(IMAGE_EXTS))})"
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
                image = decode_image(path)
            except SourceError as e:
                log.warning("skipping %s", e)
                self.skipped[path] = str(e)
                continue
            frame = Frame(self._index, image, time.monotonic(), self.uri, self._index / self.fps)
            self._index += 1
            return ReadStatus.OK, frame, ""
        return ReadStatus.ERROR, None, f"{self.path}: none of the images can be read"

    def close(self) -> None:
        self.files = []
