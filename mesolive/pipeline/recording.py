"""The recorder: a worker thread that draws and encodes recorded frames. No Qt here.

:class:`RecorderThread` owns every :class:`~mesolive.pipeline.video_file.VideoFile`
it opens: the session recording and the clips kept around alerts. The thread
that feeds it (the GUI) only calls :meth:`RecorderThread.submit`, which never
blocks: the queue is bounded and a frame that does not fit is dropped and
counted. Items are turned into pixels by a ``render`` function run in the
worker, so the GUI thread neither draws nor encodes a recorded frame.

Clips come from a ring of JPEG-compressed frames held in memory (about
180 KB a 720p frame); nothing reaches the disk unless a recording or a clip
was asked for. Stopping finalises every open file, so each one plays. A clip
is named after the face it is about; when the tracker folds that face into an
earlier one while the clip is written (:meth:`RecorderThread.fold`), the file
is renamed to the earlier ID once finalised.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import cv2
import numpy as np

from mesolive.pipeline.video_file import CODECS, MIN_FREE_BYTES, VideoFile, check_folder

log = logging.getLogger(__name__)

#: Frames waiting to be encoded; more are dropped (and counted), never waited for.
QUEUE_SIZE = 8

T = TypeVar("T")


@dataclass(frozen=True)
class RecorderEvent:
    """What the recorder did, reported from its thread.

    ``kind`` is ``"started"`` (the session recording opened), ``"saved"`` (it
    was finalised), ``"failed"`` (it could not open, or stopped early:
    ``path`` names what was saved before, if anything), ``"clip"`` (an alert
    clip was written), ``"clip_failed"`` (one could not be, or was cut
    short) or ``"clips_off"`` (the clip folder cannot be written: clips are
    off). ``message`` is one line for the user.
    """

    kind: str
    path: Path | None
    message: str
    frames: int = 0
    seconds: float = 0.0
    dropped: int = 0
    codec: str = ""


def clip_name(stamp: str, face: int) -> str:
    """``mesolive-alert-<stamp>-face<ID>``: an alert clip's file name without its extension."""
    return f"mesolive-alert-{stamp}-face{face}"


@dataclass
class _Clip:
    file: VideoFile
    t_end: float
    stamp: str
    face: int  # the face's ID; the earlier face's once it was folded into that
    folded: bool = False  # renamed to ``face`` when finalised


@dataclass(frozen=True)
class _Command:
    name: str  # "record", "stop", "clips", "end_clips", "mark", "fold"
    stem: Path | None = None
    seconds: float = 0.0
    faces: tuple[int, ...] = ()  # "mark": (face,); "fold": (young, earlier)
    stamp: str = ""  # "mark": when the alert came


class RecorderThread(threading.Thread, Generic[T]):
    """Renders and encodes submitted items; session recording and alert clips.

    Parameters
    ----------
    render
        ``item → (t, image)``: capture time in seconds (monotonic) and a
        (H, W, 3) uint8 BGR frame the worker may keep. Runs in the worker.
    on_event
        Called in the worker with each :class:`RecorderEvent`.
    fps
        Frame rate of the files written.
    codecs, min_free
        As for :class:`VideoFile`.
    """

    def __init__(
        self,
        render: Callable[[T], tuple[float, np.ndarray]],
        on_event: Callable[[RecorderEvent], None],
        *,
        fps: float = 30.0,
        codecs: Sequence[tuple[str, str]] = CODECS,
        min_free: int = MIN_FREE_BYTES,
    ) -> None:
        super().__init__(name="mesolive-recorder", daemon=False)
        self._render = render
        self._on_event = on_event
        self.fps = fps
        self.codecs = tuple(codecs)
        self.min_free = min_free
        # Frames and commands share one queue, so a command applies between the
        # frames submitted before and after it; only frames count against the
        # bound (commands are never dropped).
        self._queue: queue.SimpleQueue[T | _Command | None] = queue.SimpleQueue()
        self._room = threading.Semaphore(QUEUE_SIZE)
        self._stopping = threading.Event()
        self.dropped = 0  # frames that found the queue full (written by the feeding thread)
        self._file: VideoFile | None = None
        self._file_dropped0 = 0
        self._clip_seconds = 0.0
        self._clip_folder: Path | None = None
        self._ring: deque[tuple[float, bytes]] = deque()
        self._clips: list[_Clip] = []
        self._t_last: float | None = None
        self._pending_stem: Path | None = None  # a recording opened at the next frame

    # -- called from the feeding thread ------------------------------------------------

    def submit(self, item: T) -> bool:
        """Queue ``item`` without waiting; False (and counted) when the queue is full."""
        if not self._room.acquire(blocking=False):
            self.dropped += 1
            return False
        self._queue.put(item)
        return True

    def record(self, stem: Path) -> None:
        """Start writing every frame to ``stem`` + the codec's extension."""
        self._command(_Command("record", stem))

    def stop_recording(self) -> None:
        """Finalise the session recording (a ``"saved"`` event follows)."""
        self._command(_Command("stop"))

    def set_clips(self, folder: Path | None, seconds: float = 5.0) -> None:
        """Keep ``seconds`` before and after each :meth:`mark` in ``folder``; None: off."""
        self._command(_Command("clips", folder, seconds))

    def mark(self, face: int) -> None:
        """An alert of ``face`` now: keep a clip around the newest frame (see :func:`clip_name`)."""
        self._command(_Command("mark", faces=(face,), stamp=timestamp()))

    def fold(self, young: int, earlier: int) -> None:
        """Face ``young`` is ``earlier`` returned: its clips being written take that ID.

        A clip already saved keeps its name (its message named the file).
        """
        self._command(_Command("fold", faces=(young, earlier)))

    def end_clips(self) -> None:
        """The source ended: finalise the clips being written, forget the frames held."""
        self._command(_Command("end_clips"))

    def stop(self, timeout: float = 5.0) -> bool:
        """Finalise every file and end the thread; True when it ended in time."""
        self._stopping.set()
        self._wake()
        if self.is_alive():
            self.join(timeout)
        if self.is_alive():
            log.warning("the recorder did not stop in %.0f s", timeout)
            return False
        return True

    def _command(self, command: _Command) -> None:
        self._queue.put(command)

    def _wake(self) -> None:
        self._queue.put(None)

    # -- the worker ----------------------------------------------------------------------

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    item = self._queue.get(timeout=0.5)
                except queue.Empty:
                    continue
                self._take(item, draw=True)
            while True:  # stopping: the commands still apply, the frames are left
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                self._take(item, draw=False)
        except Exception as e:  # a bug: report it, still finalise what is open
            log.exception("the recorder failed")
            self._emit(RecorderEvent("failed", None, f"Recording failed: {e}"))
        finally:
            self._close_file("saved", "")
            for clip in self._clips:
                self._close_clip(clip)
            self._clips.clear()

    def _wanted(self) -> bool:
        """Whether a frame is needed (else it is not even drawn)."""
        return bool(self._file or self._pending_stem or self._clip_folder or self._clips)

    def _take(self, item: T | _Command | None, *, draw: bool) -> None:
        if item is None:  # a wake-up
            return
        if isinstance(item, _Command):
            self._run(item)
            return
        self._room.release()
        if draw and self._wanted():
            self._frame(*self._render(item))

    def _run(self, c: _Command) -> None:
        if c.name == "record" and c.stem is not None:
            self._open_file(c.stem)
        elif c.name == "stop":
            self._close_file("saved", "")
        elif c.name == "clips":
            self._set_clips(c.stem, c.seconds)
        elif c.name == "end_clips":
            self._ring.clear()
            for clip in self._clips:
                self._close_clip(clip)
            self._clips.clear()
        elif c.name == "mark":
            self._start_clip(c.stamp, *c.faces)
        elif c.name == "fold":
            young, earlier = c.faces
            for clip in self._clips:
                if clip.face == young:
                    clip.face, clip.folded = earlier, True

    def _set_clips(self, folder: Path | None, seconds: float) -> None:
        self._ring.clear()
        if folder is not None:
            try:
                check_folder(folder)  # now, not at the first alert
            except OSError as e:
                self._emit(RecorderEvent("clips_off", None, f"No alert clips: {e.strerror or e}"))
                folder = None
        self._clip_folder, self._clip_seconds = folder, seconds

    def _open_file(self, stem: Path) -> None:
        self._close_file("saved", "")
        self._pending_stem = stem  # the next frame gives the size

    def _frame(self, t: float, image: np.ndarray) -> None:
        self._t_last = t
        stem, self._pending_stem = self._pending_stem, None
        if stem is not None:
            try:
                self._file = self._new_file(stem, image)
            except OSError as e:
                self._emit(RecorderEvent("failed", None, f"Could not record: {e.strerror or e}"))
            else:
                self._file_dropped0 = self.dropped
                f = self._file
                self._emit(
                    RecorderEvent("started", f.path, f"Recording to {f.path}", codec=f.fourcc)
                )
        if self._file is not None:
            try:
                self._file.write(image, t)
            except OSError as e:
                self._close_file("failed", f"Recording stopped: {e.strerror or e}")
        if self._clip_folder is not None:
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            if ok:
                self._ring.append((t, jpeg.tobytes()))
            while self._ring and self._ring[0][0] < t - self._clip_seconds:
                self._ring.popleft()
        for clip in list(self._clips):
            try:
                clip.file.write(image, t)
            except OSError as e:
                self._clips.remove(clip)
                self._close_clip(clip, f"Alert clip cut short: {e.strerror or e}")
                continue
            if t >= clip.t_end:
                self._clips.remove(clip)
                self._close_clip(clip)

    def _new_file(self, stem: Path, image: np.ndarray) -> VideoFile:
        size = (image.shape[1] & ~1, image.shape[0] & ~1)  # even sizes: every codec takes them
        return VideoFile(stem, size, self.fps, codecs=self.codecs, min_free=self.min_free)

    def _start_clip(self, stamp: str, face: int) -> None:
        if self._clip_folder is None or not self._ring or self._t_last is None:
            return
        _, first = self._ring[0]
        image = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR)
        try:
            file = self._new_file(self._clip_folder / clip_name(stamp, face), image)
        except OSError as e:
            self._emit(
                RecorderEvent(
                    "clip_failed", None, f"Could not save an alert clip: {e.strerror or e}"
                )
            )
            return
        clip = _Clip(file, self._t_last + self._clip_seconds, stamp, face)
        try:
            for t, jpeg in self._ring:
                file.write(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), t)
        except OSError as e:
            self._close_clip(clip, f"Alert clip cut short: {e.strerror or e}")
            return
        self._clips.append(clip)

    def _close_clip(self, clip: _Clip, message: str = "") -> None:
        clip.file.close()
        f = clip.file
        if clip.folded:
            try:
                f.rename(f.path.with_name(clip_name(clip.stamp, clip.face)))
            except OSError as e:
                log.warning("alert clip %s keeps its name: %s", f.path, e)
        kind = "clip_failed" if message else "clip"
        text = message + (" " if message else "") + f"Alert clip saved to {f.path}"
        self._emit(RecorderEvent(kind, f.path, text, f.frames, f.seconds, codec=f.fourcc))

    def _close_file(self, kind: str, message: str) -> None:
        f, self._file = self._file, None
        self._pending_stem = None
        if f is None:
            return
        f.close()
        dropped = self.dropped - self._file_dropped0
        text = (message + "; " if message else "") + (
            f"recording saved to {f.path} ({f.seconds:.0f} s, {f.fourcc}"
            + (f", {dropped} frames dropped)" if dropped else ")")
        )
        self._emit(
            RecorderEvent(
                kind, f.path, text[0].upper() + text[1:], f.frames, f.seconds, dropped, f.fourcc
            )
        )

    def _emit(self, event: RecorderEvent) -> None:
        log.info("%s", event.message)
        try:
            self._on_event(event)
        except Exception:  # the receiver went away (window closing)
            log.debug("recorder event not delivered: %s", event, exc_info=True)


def timestamp() -> str:
    """Local time for file names: ``20261202-134501``."""
    return time.strftime("%Y%m%d-%H%M%S")
