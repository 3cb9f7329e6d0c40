"""``test:``: a synthetic stream of moving, drawn faces, for demos and tests.

The faces are drawn (shaded skin, hair, eyes with irises, brows, nose,
lips) so that SCRFD finds them, and nothing is read from disk. Each face
drifts inside its own cell of a grid, so faces never overlap and a tracker
should keep one ID per face. Frames depend only on the options and the frame
index, and :meth:`SyntheticSource.truth` gives each frame's face boxes and
keypoints for tests.

Options (``test:?faces=3&fps=30&size=1280x720&frames=300&seed=0``):

``faces``   number of faces, 0 … 24 (default 3)
``fps``     frame rate the capture thread paces to (default 30)
``size``    frame size ``WxH`` (default 1280x720)
``frames``  stop with ``END`` after this many frames (default: never)
``seed``    changes the faces' looks and paths (default 0)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from mesolive.errors import SourceError
from mesolive.sources.base import FrameSource
from mesolive.types import FaceDetections, Frame, ReadStatus

MAX_FACES = 24

# BGR palettes
_SKINS = [(150, 180, 220), (120, 160, 205), (95, 135, 185), (82, 112, 165), (160, 195, 235)]
_HAIRS = [(40, 50, 70), (20, 25, 30), (60, 100, 150), (90, 90, 100), (30, 60, 110)]
_IRISES = [(60, 80, 100), (120, 90, 40), (70, 110, 60), (40, 50, 70)]

# Sprite extent in units of the face half-height s, around the face centre.
_LEFT, _RIGHT, _TOP, _BOTTOM = -0.9, 0.9, -1.2, 1.6


@dataclass(frozen=True)
class _Face:
    sprite: np.ndarray  # (h, w, 3) uint8 BGR
    mask: np.ndarray  # (h, w) uint8, 255 where the sprite has pixels
    s: float  # face half-height in pixels
    home: tuple[float, float]  # centre of the face's cell, pixels
    amp: tuple[float, float]  # drift amplitude, pixels
    freq: tuple[float, float]  # drift frequencies, Hz
    phase: tuple[float, float]


def _scaled(color: tuple[int, int, int], k: float) -> tuple[int, int, int]:
    return (int(color[0] * k), int(color[1] * k), int(color[2] * k))


def draw_face(
    s: float,
    skin: tuple[int, int, int] = _SKINS[0],
    hair: tuple[int, int, int] = _HAIRS[0],
    iris: tuple[int, int, int] = _IRISES[0],
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one frontal face with face half-height ``s`` pixels.

    Returns
    -------
    sprite
        (h, w, 3) uint8 BGR with h = 2.8 s and w = 1.8 s (rounded); the face
        centre is at (0.9 s, 1.2 s) of the sprite.
    mask
        (h, w) uint8, 255 on the head, hair and neck, else 0.
    """
    import cv2

    w = round((_RIGHT - _LEFT) * s)
    h = round((_BOTTOM - _TOP) * s)
    img = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    cx, cy = round(-_LEFT * s), round(-_TOP * s)
    ax, ay = round(0.75 * s), round(s)

    def pt(dx: float, dy: float) -> tuple[int, int]:
        return (round(cx + dx * s), round(cy + dy * s))

    def ln(k: float) -> int:
        return max(1, round(k * s))

    # Silhouette: neck, hair behind, ears, then the face on top.
    for m, color in ((mask, 255), (img, _scaled(skin, 0.82))):
        cv2.rectangle(m, pt(-0.35, 0.55), pt(0.35, _BOTTOM), color, -1)
    for m, color in ((mask, 255), (img, hair)):
        cv2.ellipse(m, pt(0, -0.1), (round(ax * 1.12), round(ay * 1.05)), 0, 180, 360, color, -1)
    for sx in (-1, 1):
        for m, color in ((mask, 255), (img, _scaled(skin, 0.8))):
            cv2.ellipse(m, pt(sx * 0.74, 0.05), (ln(0.12), ln(0.22)), 0, 0, 360, color, -1)
    face = np.zeros((h, w), np.uint8)
    cv2.ellipse(face, (cx, cy), (ax, ay), 0, 0, 360, 255, -1)
    mask |= face
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    d2 = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2
    shade = np.clip(1.0 - 0.35 * d2, 0.55, 1.0)[..., None]
    shaded = (np.asarray(skin, np.float32)[None, None, :] * shade).astype(np.uint8)
    inside = face > 0
    img[inside] = shaded[inside]
    # Hair line, brows and eyes.
    cv2.ellipse(img, pt(0, -0.55), (round(ax * 1.02), round(ay * 0.5)), 0, 180, 360, hair, -1)
    for sx in (-1, 1):
        eye = pt(sx * 0.33, -0.12)
        cv2.ellipse(
            img,
            pt(sx * 0.33, -0.32),
            (ln(0.2), ln(0.06)),
            0,
            180,
            360,
            _scaled(hair, 0.6),
            ln(0.05),
        )
        cv2.ellipse(img, eye, (ln(0.2), ln(0.11)), 0, 0, 360, _scaled(skin, 0.75), -1)
        cv2.ellipse(img, eye, (ln(0.16), ln(0.075)), 0, 0, 360, (235, 240, 240), -1)
        cv2.circle(img, eye, ln(0.07), iris, -1)
        cv2.circle(img, eye, ln(0.035), (10, 10, 10), -1)
        cv2.ellipse(img, eye, (ln(0.16), ln(0.075)), 0, 180, 360, (30, 30, 40), ln(0.02))
    # Nose and mouth.
    nose = np.array([pt(0, -0.05), pt(-0.1, 0.25), pt(0.1, 0.25)], np.int32)
    cv2.fillPoly(img, [nose], _scaled(skin, 0.8))
    cv2.ellipse(img, pt(0, 0.25), (ln(0.12), ln(0.05)), 0, 0, 180, _scaled(skin, 0.6), -1)
    cv2.ellipse(img, pt(0, 0.5), (ln(0.25), ln(0.08)), 0, 0, 360, (80, 80, 170), -1)
    cv2.line(img, pt(-0.25, 0.5), pt(0.25, 0.5), (40, 40, 90), ln(0.025))
    return img, mask


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` → (1280, 720); raises ValueError."""
    w, sep, h = text.lower().partition("x")
    if not sep:
        raise ValueError(f"expected WIDTHxHEIGHT, got {text!r}")
    return int(w), int(h)


class SyntheticSource(FrameSource):
    """Endless (or ``frames`` long) stream of drawn faces; see the module docstring.

    Not live: the capture thread paces it to :attr:`fps`, and ``pts`` is
    ``index / fps``.
    """

    is_live = False

    def __init__(
        self,
        *,
        faces: int = 3,
        fps: float = 30.0,
        size: tuple[int, int] = (1280, 720),
        frames: int | None = None,
        seed: int = 0,
        uri: str = "test:",
    ) -> None:
        width, height = size
        if not 0 <= faces <= MAX_FACES:
            raise SourceError(f"{uri}: faces={faces}: expected 0 … {MAX_FACES}")
        if not (64 <= width <= 7680 and 64 <= height <= 4320):
            raise SourceError(f"{uri}: size={width}x{height}: expected 64x64 … 7680x4320")
        if not 0 < fps <= 1000:
            raise SourceError(f"{uri}: fps={fps:g}: expected a rate in (0, 1000]")
        if frames is not None and frames < 0:
            raise SourceError(f"{uri}: frames={frames}: expected 0 or more")
        self.uri = uri
        self.fps = float(fps)
        self.n_faces = faces
        self.size = (width, height)
        self.frames = frames
        self.seed = seed
        self._faces: list[_Face] = []
        self._background: np.ndarray | None = None
        self._index = 0

    def open(self) -> None:
        import cv2

        width, height = self.size
        rng = np.random.default_rng(self.seed)
        # Background: a soft diagonal gradient with fixed grain, made once.
        gy, gx = np.mgrid[:height, :width].astype(np.float32)
        ramp = (gx / width + gy / height)[..., None] * 0.5
        base = np.array([95, 110, 100], np.float32) + ramp * np.array([40, 20, -20], np.float32)
        grain = rng.normal(0.0, 12.0, (height, width, 1)).astype(np.float32)
        self._background = np.clip(base + grain, 0, 255).astype(np.uint8)
        cv2.GaussianBlur(self._background, (3, 3), 0, dst=self._background)

        self._faces = []
        if self.n_faces == 0:
            return
        cols = max(1, math.ceil(math.sqrt(self.n_faces * width / height)))
        rows = math.ceil(self.n_faces / cols)
        cell_w, cell_h = width / cols, height / rows
        s_max = min(cell_w * 0.8 / (_RIGHT - _LEFT), cell_h * 0.8 / (_BOTTOM - _TOP))
        for i in range(self.n_faces):
            r, c = divmod(i, cols)
            s = s_max * float(rng.uniform(0.85, 1.0))
            sprite, mask = draw_face(
                s,
                _SKINS[int(rng.integers(len(_SKINS)))],
                _HAIRS[int(rng.integers(len(_HAIRS)))],
                _IRISES[int(rng.integers(len(_IRISES)))],
            )
            slack_x = max(0.0, (cell_w - sprite.shape[1]) / 2 - 1)
            slack_y = max(0.0, (cell_h - sprite.shape[0]) / 2 - 1)
            self._faces.append(
                _Face(
                    sprite,
                    mask,
                    s,
                    ((c + 0.5) * cell_w, (r + 0.5) * cell_h),
                    (slack_x, slack_y),
                    (float(rng.uniform(0.08, 0.25)), float(rng.uniform(0.08, 0.25))),
                    (float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0, 2 * math.pi))),
                )
            )

    def _top_left(self, face: _Face, t: float) -> tuple[int, int]:
        """Sprite's top-left corner at time ``t`` seconds, in frame pixels."""
        h, w = face.mask.shape
        x = face.home[0] + face.amp[0] * math.sin(2 * math.pi * face.freq[0] * t + face.phase[0])
        y = face.home[1] + face.amp[1] * math.sin(2 * math.pi * face.freq[1] * t + face.phase[1])
        return round(x - w / 2), round(y - h / 2)

    def render(self, index: int) -> np.ndarray:
        """Frame ``index`` as (H, W, 3) uint8 BGR, a new array."""
        import cv2

        if self._background is None:
            raise SourceError(f"{self.uri}: not open")
        img = self._background.copy()
        height, width = img.shape[:2]
        t = index / self.fps
        for face in self._faces:
            x, y = self._top_left(face, t)
            h, w = face.mask.shape
            x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
            if x2 <= x1 or y2 <= y1:
                continue
            sub = (slice(y1 - y, y2 - y), slice(x1 - x, x2 - x))
            cv2.copyTo(face.sprite[sub], face.mask[sub], img[y1:y2, x1:x2])  # in place
        return img

    def truth(self, index: int) -> FaceDetections:
        """Where the faces of frame ``index`` are, as drawn.

        Boxes span the face oval (x1, y1, x2, y2 in frame pixels); keypoints
        follow SCRFD's order (left eye, right eye, nose tip, left and right
        mouth corners, as seen in the image). Faces are in grid order, which
        is also the order of their IDs in a well-behaved tracker.
        """
        t = index / self.fps
        boxes, kps = [], []
        for face in self._faces:
            x, y = self._top_left(face, t)
            cx, cy, s = x - _LEFT * face.s, y - _TOP * face.s, face.s
            boxes.append([cx - 0.75 * s, cy - s, cx + 0.75 * s, cy + s])
            offsets = [(-0.33, -0.12), (0.33, -0.12), (0.0, 0.22), (-0.25, 0.5), (0.25, 0.5)]
            kps.append([[cx + dx * s, cy + dy * s] for dx, dy in offsets])
        if not boxes:
            return FaceDetections.empty()
        n = len(boxes)
        return FaceDetections(
            np.asarray(boxes, np.float32), np.ones(n, np.float32), np.asarray(kps, np.float32)
        )

    def read(self, timeout: float) -> tuple[ReadStatus, Frame | None, str]:
        if self._background is None:
            return ReadStatus.ERROR, None, f"{self.uri}: not open"
        if self.frames is not None and self._index >= self.frames:
            return ReadStatus.END, None, f"{self.uri}: end after {self.frames} frames"
        index = self._index
        frame = Frame(index, self.render(index), time.monotonic(), self.uri, index / self.fps)
        self._index += 1
        return ReadStatus.OK, frame, ""

    def close(self) -> None:
        self._background = None
        self._faces = []
