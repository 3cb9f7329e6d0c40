"""Cameras through OpenCV (V4L2 on Linux, the platform default elsewhere)."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from mesolive.errors import SourceError
from mesolive.sources._cv import CaptureReader, quiet_opencv

log = logging.getLogger(__name__)

_V4L_SYS = Path("/sys/class/video4linux")
V4L_SELECT_TIMEOUT = 2  # seconds a Linux camera may stay silent before a read fails


@dataclass(frozen=True)
class CameraInfo:
    """A camera found without opening it: its index (``webcam:N``) and a name."""

    index: int
    name: str


def linux_cameras(sys_dir: Path = _V4L_SYS) -> list[CameraInfo]:
    """Capture devices from sysfs, without opening any (so it cannot hang).

    A USB camera usually shows up as two nodes, ``/dev/videoN`` for frames and
    ``/dev/videoN+1`` for metadata; sysfs gives the metadata node ``index`` 1,
    so only nodes with ``index`` 0 are listed.
    """
    cams: list[CameraInfo] = []
    if not sys_dir.is_dir():
        return cams
    for node in sys_dir.glob("video*"):
        try:
            number = int(node.name[len("video") :])
        except ValueError:
            continue
        try:
            if (node / "index").read_text().strip() not in ("", "0"):
                continue
            name = (node / "name").read_text().strip() or node.name
        except OSError:
            name = node.name
        cams.append(CameraInfo(number, name))
    return sorted(cams, key=lambda c: c.index)


class WebcamSource(CaptureReader):
    """``webcam:N``: camera number N (``/dev/videoN`` on Linux).

    ``width``, ``height`` and ``fps`` are requests: the driver picks the
    nearest mode it has, and :attr:`fps` reports what it chose. ``read``
    blocks for up to one frame interval of the camera, not the shorter
    ``timeout``; a camera that stops sending fails the read after
    :data:`V4L_SELECT_TIMEOUT` s on Linux. Elsewhere the platform's driver
    decides, and the capture thread's watchdog covers a read that never
    returns.
    """

    lost_message = "the camera stopped delivering frames"
    noun = "camera"

    is_live = True

    def __init__(
        self,
        index: int | str,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        uri: str | None = None,
    ) -> None:
        self.device = index
        self.uri = uri or f"webcam:{index}"
        self.width = width
        self.height = height
        self.requested_fps = fps
        self.fps = fps
        self._cap = None
        self._index = 0

    def open(self) -> None:
        import cv2

        self.close()
        quiet_opencv()
        if sys.platform.startswith("linux"):
            self._check_linux_device()
            # OpenCV's V4L2 backend waits 10 s for a frame of a stalled camera and
            # has no read-timeout property; this setting is read at its first wait.
            os.environ.setdefault("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT", str(V4L_SELECT_TIMEOUT))
            cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        else:
            cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.uri}: cannot open the camera (in use, or no permission)")
        if self.width and self.height and self.width * self.height > 640 * 480:
            # Most USB cameras reach HD frame rates only with MJPG; ignored where unsupported.
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
        if self.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.requested_fps:
            cap.set(cv2.CAP_PROP_FPS, self.requested_fps)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if 0 < fps < 1000 else self.requested_fps
        log.info(
            "%s: %dx%d at %s fps",
            self.uri,
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            f"{self.fps:g}" if self.fps else "?",
        )
        self._cap = cap

    def _check_linux_device(self) -> None:
        """Fail fast and clearly where OpenCV would print a warning and fail anyway."""
        path = (
            Path(self.device) if isinstance(self.device, str) else Path(f"/dev/video{self.device}")
        )
        if path.exists():
            return
        found = linux_cameras()
        have = ", ".join(f"webcam:{c.index} ({c.name})" for c in found) or "none"
        raise SourceError(
            f"{self.uri}: no such camera ({path} does not exist; cameras found: {have})"
        )
