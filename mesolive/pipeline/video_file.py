"""One video file written frame by frame at a fixed rate, paced by capture times. No Qt.

Frames are paced to real time by their capture time: a frame is written as
often as the time since the previous one asks at the file's frame rate (a
frame the analysis skipped leaves its predecessor on screen for longer), and
a gap longer than :data:`MAX_GAP_S` (a pause) is cut to that.

A file is never replaced (a number is added to its name), and writing stops
before the disk is full (``min_free`` bytes left), so the writer can still
finalise the file and it plays.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from mesolive.errors import InputError
from mesolive.paths import opencv_name
from mesolive.sources._cv import quiet_opencv, silent_opencv

log = logging.getLogger(__name__)

#: fourcc and file extension, in order of preference. H.264 (``avc1``) plays
#: everywhere, but OpenCV's Linux wheels have no H.264 encoder; MPEG-4 Part 2
#: (``mp4v``) is in every FFmpeg build and plays in VLC, mpv, ffmpeg and most
#: desktop players; Motion JPEG in AVI is the last resort (large files).
CODECS: tuple[tuple[str, str], ...] = (("avc1", ".mp4"), ("mp4v", ".mp4"), ("MJPG", ".avi"))
#: Writing stops while this much space is left, so the file can be finalised.
MIN_FREE_BYTES = 256 * 1024 * 1024
#: Longest gap between two frames kept in a file (a pause is cut to this).
MAX_GAP_S = 1.0

_broken_codecs: set[str] = set()  # fourccs that failed to open in a writable folder


class RecordingError(OSError):
    """A video file cannot be opened or written (folder, disk, codec)."""


def unique_path(stem: Path, ext: str) -> Path:
    """``stem + ext``, or ``stem-2 + ext``… where it exists; the file is created empty.

    Creating it (``O_EXCL``) reserves the name against another recorder.
    """
    for n in range(1, 1000):
        path = stem.with_name(f"{stem.name}{'' if n == 1 else f'-{n}'}{ext}")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        return path
    raise RecordingError(errno.EEXIST, f"{stem}{ext}: too many files of that name")


def check_folder(folder: Path) -> None:
    """Make ``folder`` if needed and check a file can be created in it.

    Raises
    ------
    RecordingError
        Naming the folder and the reason (not a folder, no permission, read-only).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = unique_path(folder / ".mesolive-write-test", "")
        probe.unlink()
    except OSError as e:
        raise RecordingError(
            e.errno or errno.EACCES, f"cannot write in {folder}: {e.strerror or e}"
        ) from e


class VideoFile:
    """One video being written at a fixed frame rate, paced by capture times.

    Parameters
    ----------
    stem
        Path without extension; the codec chosen adds ``.mp4`` or ``.avi``.
    size
        ``(width, height)`` of the file; frames of another size are resized.
    fps
        Frame rate of the file.
    codecs
        ``(fourcc, extension)`` pairs tried in order (see :data:`CODECS`).
    min_free
        Bytes that must stay free on the disk; below, :meth:`write` raises.

    Raises
    ------
    RecordingError
        The folder cannot be written, or no codec opens.
    """

    def __init__(
        self,
        stem: Path,
        size: tuple[int, int],
        fps: float,
        *,
        codecs: Sequence[tuple[str, str]] = CODECS,
        min_free: int = MIN_FREE_BYTES,
    ) -> None:
        check_folder(stem.parent)
        self.size = size
        self.fps = fps
        self.min_free = min_free
        self.frames = 0  # frames in the file (repeats included)
        self._t0: float | None = None
        self._last: np.ndarray | None = None  # the frame written last, (H, W, 3) uint8 BGR
        self._writer, self.path, self.fourcc = self._open(stem, codecs)
        self._check_disk()

    def _open(
        self, stem: Path, codecs: Sequence[tuple[str, str]]
    ) -> tuple[cv2.VideoWriter, Path, str]:
        tried = []
        quiet_opencv()  # FFmpeg's own chatter too
        for fourcc, ext in codecs:
            if fourcc in _broken_codecs:
                continue
            tried.append(fourcc)
            path = unique_path(stem, ext)
            try:
                # a folder name that is not UTF-8 crashed OpenCV's binding (paths.opencv_name)
                with opencv_name(path, writing=True) as name, silent_opencv():
                    # a codec missing here is said below, in one line
                    writer = cv2.VideoWriter(
                        name, cv2.VideoWriter.fourcc(*fourcc), self.fps, self.size
                    )
            except InputError as e:
                path.unlink(missing_ok=True)
                raise RecordingError(errno.EINVAL, str(e)) from e
            if writer.isOpened():
                log.info("recording %s with %s at %.1f fps", path, fourcc, self.fps)
                return writer, path, fourcc
            writer.release()
            path.unlink(missing_ok=True)
            _broken_codecs.add(fourcc)  # the folder is writable: the codec is missing
            log.info("video codec %s is not available here", fourcc)
        raise RecordingError(
            errno.ENOENT, f"no video codec works here (tried {', '.join(tried) or 'none'})"
        )

    def _check_disk(self) -> None:
        free = shutil.disk_usage(self.path.parent).free
        if free < self.min_free:
            raise RecordingError(
                errno.ENOSPC,
                f"the disk of {self.path.parent} is nearly full ({free // 2**20} MB left)",
            )

    def write(self, image: np.ndarray, t: float) -> None:
        """Add a (H, W, 3) uint8 BGR frame captured at ``t`` (seconds, monotonic).

        Raises
        ------
        RecordingError
            The disk is nearly full (checked once a second of video); the
            file is still open and :meth:`close` finalises it.
        """
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        if self._t0 is None or self._last is None:
            self._t0 = t
            self._write(image)
            return
        due = round((t - self._t0) * self.fps) + 1  # frames the file should hold by now
        repeats = due - self.frames
        gap = int(MAX_GAP_S * self.fps)
        if repeats > gap:  # a pause: keep a second of it, shift the clock
            self._t0 += (repeats - gap) / self.fps
            repeats = gap
        if repeats <= 0:
            return  # a second result for the same frame time: the file has it
        for _ in range(repeats - 1):  # the previous frame stays on screen until this one
            self._write(self._last)
        self._write(image)

    def _write(self, image: np.ndarray) -> None:
        self._writer.write(image)
        self._last = image
        self.frames += 1
        if self.frames % max(1, round(self.fps)) == 0:
            self._check_disk()

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    def close(self) -> None:
        """Finalise the file (index, ``moov`` atom) so it plays; idempotent."""
        self._writer.release()

    def rename(self, stem: Path) -> None:
        """After :meth:`close`: move the file to ``stem`` + its extension (see :func:`unique_path`).

        Raises
        ------
        OSError
            The file could not be moved; it stays where it was, under its name.
        """
        target = unique_path(stem, self.path.suffix)
        try:
            os.replace(self.path, target)
        except OSError:
            target.unlink(missing_ok=True)
            raise
        log.info("%s renamed to %s", self.path, target.name)
        self.path = target
