"""Training faces cut by the product itself: the live detector and the model's crop.

Every training image goes through what runs at inference time: SCRFD finds
the faces and the model's :class:`~mesolive.classify.preprocess.Preprocess`
cuts the largest one (the authors' own training pipeline kept one face per
frame). Photos, pre-cut crops from other pipelines (DFDC's tight 224-px
crops) and video frames are all re-framed this way; where a pre-cut crop
lacks context the crop is padded by reflection, as at a frame's edge live.

Results are cached under ``<cache>/train/faces`` keyed by the contract, the
detector file and the inputs (path, size, modification time), in chunks of
:data:`CHUNK` stills, so an interrupted extraction resumes where it stopped
and a second run over the same data decodes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mesolive import paths
from mesolive.classify.crops import CropReader
from mesolive.classify.preprocess import Preprocess
from mesolive.errors import InputError

log = logging.getLogger(__name__)

CACHE_VERSION = 3
CHUNK = 256
NO_FACE = "no face"


@dataclass(frozen=True)
class StillResult:
    """One still: its crop (S, S, 3) uint8 BGR, or why there is none."""

    face: np.ndarray | None
    problem: str = ""


def _file_key(path: Path) -> str:
    """What a still's cached face depends on; a file that cannot be looked at keys its
    error (reading it then names the problem, counted like any unreadable file)."""
    try:
        st = path.stat()
    except OSError as e:
        return f"{path.absolute()}|{e.strerror}"
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _video_key(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:20]


def _save(path: Path, **arrays: np.ndarray) -> None:
    """Write an .npz atomically, so an interrupted run never leaves a broken chunk.

    The cache only saves time: a full disk or an unwritable folder is a
    warning, and the faces are cut again next time.
    """
    try:
        with paths.replacing(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
    except OSError as e:
        log.warning("%s: cannot keep the cut faces (%s); going on without the cache", path, e)


class FaceCutter:
    """Cuts the largest face of stills and video frames by one model's contract.

    Parameters
    ----------
    contract
        The model's preprocessing contract (crop rule, scale, size, interpolation).
    detector, model_dir, threads
        As ``--detector``, ``--model-dir`` and ``--threads`` (the detector's).
    """

    def __init__(
        self,
        contract: Preprocess,
        *,
        detector: str | None = None,
        model_dir: str | None = None,
        threads: int | None = None,
    ) -> None:
        from mesolive.detect.scrfd import resolve_detector

        self.contract = contract
        self.detector_path = resolve_detector(detector, model_dir)
        # the same cut classify/evaluate make of a crop; its detector loads on first use
        self._reader = CropReader(contract, detector=self.detector_path, threads=threads)
        rule = {k: v for k, v in contract.to_dict().items() if k != "precut"}
        with open(self.detector_path, "rb") as f:
            det_sha = hashlib.sha256(f.read()).hexdigest()
        self._key = hashlib.sha256(
            json.dumps([CACHE_VERSION, rule, det_sha], sort_keys=True).encode()
        ).hexdigest()[:16]
        self.cache = paths.cache_dir() / "train" / "faces"

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> FaceCutter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cut_largest(self, bgr: np.ndarray) -> np.ndarray | None:
        """The largest face as an (S, S, 3) uint8 BGR crop, or None."""
        return self._reader.largest(bgr)

    # -- stills -----------------------------------------------------------------------
    def stills(self, files: Sequence[Path], on_chunk=None) -> list[StillResult]:
        """One result per file, in order; unreadable files and faceless ones say so."""
        out: list[StillResult] = []
        for start in range(0, len(files), CHUNK):
            out += self._chunk(files[start : start + CHUNK])
            if on_chunk is not None:
                on_chunk(min(start + CHUNK, len(files)), len(files))
        return out

    def _chunk(self, files: Sequence[Path]) -> list[StillResult]:
        from mesolive.imageio import read_image

        keys = [_file_key(f) for f in files]
        digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:20]
        cached = self.cache / f"stills.{self._key}.{digest}.npz"
        if cached.is_file():
            with np.load(cached) as z:
                faces, problems = z["faces"], [str(p) for p in z["problems"]]
            it = iter(faces)
            return [StillResult(None if p else next(it), p) for p in problems]
        results = []
        for f in files:
            try:
                face = self._cut_largest(read_image(f))
            except InputError as e:
                results.append(StillResult(None, str(e)))
                continue
            results.append(StillResult(face, "" if face is not None else NO_FACE))
        size = self.contract.size
        kept = [r.face for r in results if r.face is not None]
        _save(
            cached,
            faces=np.stack(kept) if kept else np.zeros((0, size, size, 3), np.uint8),
            problems=np.array([r.problem for r in results]),
        )
        return results

    # -- videos -----------------------------------------------------------------------
    def video(self, path: str | os.PathLike[str], max_faces: int = 60) -> list[np.ndarray]:
        """Up to ``max_faces`` crops from frames sampled evenly through a video.

        Returns (S, S, 3) uint8 BGR crops, the largest face of each sampled frame.

        Raises
        ------
        InputError
            The file cannot be read as a video.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such video")
        cached = self.cache / f"video.{self._key}.{_video_key(path)}.{max_faces}.npz"
        if cached.is_file():
            with np.load(cached) as z:
                return list(z["faces"])
        with paths.opencv_name(path) as name:
            cap = cv2.VideoCapture(name)
        if not cap.isOpened():
            raise InputError(f"{path}: cannot open as a video")
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or max_faces
        stride = max(1, total // max_faces)
        faces: list[np.ndarray] = []
        index = 0
        try:
            while len(faces) < max_faces and cap.grab():
                if index % stride == 0:
                    ok, frame = cap.retrieve()
                    face = self._cut_largest(frame) if ok else None
                    if face is not None:
                        faces.append(face)
                index += 1
        finally:
            cap.release()
        if index == 0:
            raise InputError(f"{path}: no frame could be decoded (not a video, or truncated)")
        size = self.contract.size
        _save(cached, faces=np.stack(faces) if faces else np.zeros((0, size, size, 3), np.uint8))
        log.info("%s: %d faces from %d frames", path, len(faces), index)
        return faces
