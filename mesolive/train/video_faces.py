"""Faces for training, cut from labelled videos as the live pipeline cuts them.

Frames are sampled evenly through the video; in each, the largest face found
by the SCRFD detector is cut with the authors' crop (as their own training
pipeline kept one face per frame). Results are cached under the video's
checksum, so a second run over the same data does not decode it again.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import cv2
import numpy as np

from mesolive import paths
from mesolive.errors import InputError

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def _video_key(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:20]


def extract_faces(
    path: str | os.PathLike[str],
    *,
    max_faces: int = 60,
    detector: str | None = None,
    model_dir: str | None = None,
) -> list[np.ndarray]:
    """Up to ``max_faces`` face crops from a video: (256, 256, 3) uint8 RGB each.

    Raises
    ------
    InputError
        The file cannot be read as a video.
    """
    from mesolive.align.crop import crop_faces
    from mesolive.detect.scrfd import ScrfdDetector, resolve_detector

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such video")
    cache = paths.cache_dir() / "train" / "faces"
    cached = cache / f"{_video_key(path)}.{max_faces}.v{CACHE_VERSION}.npy"
    if cached.is_file():
        return list(np.load(cached))
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"{path}: cannot open as a video")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or max_faces
    stride = max(1, total // max_faces)
    faces: list[np.ndarray] = []
    with ScrfdDetector(resolve_detector(detector, model_dir)) as det:
        index = 0
        while len(faces) < max_faces:
            ok = cap.grab()
            if not ok:
                break
            if index % stride == 0:
                ok, frame = cap.retrieve()
                if ok:
                    found = det.detect(frame)
                    if len(found):
                        xyxy = found.xyxy
                        largest = int(
                            np.argmax((xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1]))
                        )
                        crop = crop_faces(frame, found.kps[largest : largest + 1])[0]
                        faces.append(np.ascontiguousarray(crop[:, :, ::-1]))
            index += 1
    cap.release()
    if index == 0:
        raise InputError(f"{path}: no frame could be decoded (not a video, or truncated)")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".part.npy")
    np.save(tmp, np.stack(faces) if faces else np.zeros((0, 256, 256, 3), np.uint8))
    os.replace(tmp, cached)
    log.info("%s: %d faces from %d frames", path, len(faces), index)
    return faces
