"""insightface's SCRFD face detector on an ONNX Runtime session, without insightface.

SCRFD ("Sample and Computation Redistribution for Efficient Face Detection",
Guo et al. 2021) predicts, on feature maps of stride 8, 16 and 32 with two
anchors per cell, a face score, the distances from the anchor centre to the
four box sides and the offsets of five keypoints, all in units of the stride.
This module does the pre- and post-processing insightface's ``scrfd.py`` does
(letterbox to the input size, ``(x - 127.5) / 128`` RGB, decode, NMS at IoU
0.4), written from the model's contract; the ``insightface`` package itself is
not used (its ``opencv-python`` dependency breaks PySide6).

A detector ONNX either has a dynamic input (any size, a multiple of 32) or a
fixed one. insightface silently ignores a requested size the file cannot
take; here a warning says so.
"""

from __future__ import annotations

import logging
import os
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from mesolive import paths
from mesolive.env import env_flag, env_url
from mesolive.errors import DownloadError, InputError, ModelError
from mesolive.types import FaceDetections

if TYPE_CHECKING:
    from mesolive.models.registry import DetectorSpec

log = logging.getLogger(__name__)

DEFAULT_DET_SIZE = 320
"""Detector input side when none is asked for (``bench/pipeline.py``, docs/pipeline.md).

On the ``../shared/facebox`` photos 320 found as many hand-labelled faces as
640 at a quarter of the cost; 640 only pays off for faces under ~20 px in a
frame, which MesoNet cannot judge anyway (it needs mesoscopic texture).
"""
NMS_IOU = 0.4  # as insightface
MIN_SIZE, MAX_SIZE = 32, 2048
DYNAMIC_FILE = "scrfd_500m_bnkps_dynamic.onnx"
PACK_DETECTOR = "buffalo_sc"  # the manifest entry of the pack insightface downloads


def _round32(value: int) -> int:
    return max(MIN_SIZE, round(value / 32.0) * 32)


class ScrfdDetector:
    """SCRFD with five keypoints on an ONNX Runtime session.

    Parameters
    ----------
    model
        Path of an SCRFD ONNX file with keypoint outputs (``*_bnkps``,
        ``det_500m.onnx``, …).
    det_size
        Side of the square network input in pixels (rounded to a multiple of
        32). ``None``: :data:`DEFAULT_DET_SIZE`. A file with a fixed input
        keeps its own size, with a warning when another was asked for.
    threshold
        Minimum face score.
    device
        ``"cpu"`` or ``"cuda"`` (the classifier's execution provider).
    threads
        ONNX Runtime intra-op threads (``None``: the runner's default).

    Raises
    ------
    ModelError
        The file cannot be loaded or is not an SCRFD detector with keypoints.
    InputError
        ``det_size`` or ``threshold`` is out of range.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        det_size: int | None = None,
        threshold: float = 0.5,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        from mesolive.backends.onnxruntime import OnnxRuntimeRunner

        if det_size is not None and not MIN_SIZE <= det_size <= MAX_SIZE:
            raise InputError(
                f"--det-size {det_size}: expected a side between {MIN_SIZE} and {MAX_SIZE} pixels"
            )
        if not 0.0 < threshold < 1.0:
            raise InputError(f"detector threshold {threshold}: expected a value in (0, 1)")
        self.path = Path(model)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such detector file")
        self.threshold = float(threshold)
        self.runner = OnnxRuntimeRunner(self.path, device=device, threads=threads)
        spec = self.runner.input_specs[0]
        self._input_name = spec.name
        self._outputs = self.runner.output_names
        self._levels = self._parse_outputs(self._outputs)
        self.input_size = self._choose_size(spec.shape, det_size)
        self.fixed_input = isinstance(spec.shape[2], int) and isinstance(spec.shape[3], int)
        w, h = self.input_size
        self.name = f"scrfd {self.path.name} {w}x{h} {self.runner.name}"
        self._canvas = np.zeros((h, w, 3), np.uint8)
        self._filled = (0, 0)  # (width, height) of the image part of the canvas
        self._centres: dict[tuple[int, int, int], np.ndarray] = {}
        self.detect(np.zeros((h, w, 3), np.uint8))  # warm-up: the first real frame is not slow

    # -- set-up -------------------------------------------------------------------

    def _parse_outputs(self, names: list[str]) -> list[tuple[int, str, str, str]]:
        """``(stride, score, bbox, kps)`` output names per pyramid level.

        insightface's export orders outputs as all scores, all boxes, all
        keypoints, each by ascending stride (9 outputs: strides 8/16/32;
        15: 8…128). Files with 6 or 10 outputs have no keypoints, which the
        authors' crop needs.
        """
        n = len(names)
        if n == 9:
            strides = (8, 16, 32)
        elif n == 15:
            strides = (8, 16, 32, 64, 128)
        elif n in (6, 10):
            raise ModelError(
                f"{self.path}: this SCRFD file has no keypoint outputs; use a *_bnkps model"
            )
        else:
            raise ModelError(f"{self.path}: not an SCRFD detector ({n} outputs, expected 9 or 15)")
        k = len(strides)
        return [(s, names[i], names[i + k], names[i + 2 * k]) for i, s in enumerate(strides)]

    def _choose_size(self, shape: tuple, det_size: int | None) -> tuple[int, int]:
        h, w = shape[2], shape[3]
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            if det_size is not None and (det_size, det_size) != (w, h):
                log.warning(
                    "%s has a fixed %dx%d input: detection size %d cannot be honoured, "
                    "using %dx%d (a detector with a dynamic input, e.g. %s, runs at any size)",
                    self.path.name,
                    w,
                    h,
                    det_size,
                    w,
                    h,
                    DYNAMIC_FILE,
                )
            return w, h
        side = det_size or DEFAULT_DET_SIZE
        rounded = _round32(side)
        if rounded != side:
            log.warning(
                "detection size %d is not a multiple of 32 (SCRFD's coarsest stride); using %d",
                side,
                rounded,
            )
        return rounded, rounded

    # -- detection -----------------------------------------------------------------

    def _letterbox(self, image: np.ndarray) -> float:
        """Resize ``image`` into the top-left of the canvas; return the scale.

        A frame is never enlarged more than :data:`DEFAULT_DET_SIZE` would
        enlarge it. A larger input is for small faces in large frames; SCRFD
        misses faces above about 250-400 px in its input, so a 404-px clip
        blown up 2.5x at 1024 lost its only face (one at 173 px), which the
        rest of the canvas, left black, now finds.
        """
        ih, iw = image.shape[:2]
        w, h = self.input_size
        scale = min(w / iw, h / ih, max(1.0, DEFAULT_DET_SIZE / max(iw, ih)))
        nw = min(w, max(1, round(iw * scale)))
        nh = min(h, max(1, round(ih * scale)))
        if (nw, nh) != self._filled:
            self._canvas[:] = 0  # the padding must stay black (as insightface pads)
            self._filled = (nw, nh)
        if (nw, nh) == (iw, ih):
            self._canvas[:nh, :nw] = image
        else:
            self._canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        # The exact scale per axis is nw/iw and nh/ih; they differ by < 1 px.
        return nw / iw

    def _anchor_centres(self, fh: int, fw: int, stride: int, anchors: int) -> np.ndarray:
        key = (fh, fw, stride * 16 + anchors)
        c = self._centres.get(key)
        if c is None:
            ys, xs = np.mgrid[:fh, :fw]
            c = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
            c = np.repeat(c, anchors, axis=0)  # anchors of one cell are adjacent rows
            self._centres[key] = c
        return c

    def detect(self, image: np.ndarray) -> FaceDetections:
        """Faces in an (H, W, 3) uint8 BGR image; boxes and keypoints in its pixels.

        Boxes are clipped to the image; keypoints are not (a nose may lie
        outside a face cut by the frame edge).
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 BGR image, got {image.shape} {image.dtype}"
            )
        scale = self._letterbox(image)
        w, h = self.input_size
        blob = cv2.dnn.blobFromImage(
            self._canvas, 1.0 / 128.0, (w, h), (127.5, 127.5, 127.5), swapRB=True, crop=False
        )
        out = self.runner.infer({self._input_name: blob})
        boxes, scores, kps = [], [], []
        for stride, s_name, b_name, k_name in self._levels:
            score = out[s_name].reshape(-1)
            pos = np.flatnonzero(score >= self.threshold)
            if pos.size == 0:
                continue
            fh, fw = h // stride, w // stride
            anchors = max(1, score.size // (fh * fw))
            centres = self._anchor_centres(fh, fw, stride, anchors)[pos]
            dist = out[b_name].reshape(-1, 4)[pos] * stride
            boxes.append(np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], axis=1))
            offs = out[k_name].reshape(-1, 5, 2)[pos] * stride
            kps.append(offs + centres[:, None, :])
            scores.append(score[pos])
        if not scores:
            return FaceDetections.empty()
        xyxy = np.concatenate(boxes).astype(np.float32) / scale
        sc = np.concatenate(scores).astype(np.float32)
        pts = np.concatenate(kps).astype(np.float32) / scale
        keep = nms(xyxy, sc, NMS_IOU)
        xyxy, sc, pts = xyxy[keep], sc[keep], pts[keep]
        ih, iw = image.shape[:2]
        np.clip(xyxy[:, 0::2], 0, iw, out=xyxy[:, 0::2])
        np.clip(xyxy[:, 1::2], 0, ih, out=xyxy[:, 1::2])
        return FaceDetections(xyxy, sc, pts)

    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> ScrfdDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def nms(xyxy: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Parameters
    ----------
    xyxy
        (n, 4) float boxes.
    scores
        (n,) float scores.
    iou
        Boxes overlapping a better one by more than this are dropped.

    Returns
    -------
    np.ndarray
        (k,) int64 indices of the kept boxes, best score first.
    """
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (xyxy[:, i] for i in range(4))
    area = np.maximum(0.0, x2 - x1) * np.maximum(0.0, y2 - y1)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        overlap = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.int64)


# -- which file ------------------------------------------------------------------


def resolve_detector(
    detector: str | os.PathLike[str] | None = None,
    model_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The detector file to use.

    In order: ``detector`` (``--detector``); ``scrfd_500m_bnkps_dynamic.onnx``
    in the model folder (``--model-dir``/``MESOLIVE_MODEL_DIR``), checked
    against the manifest's sha256; else ``det_500m.onnx`` of insightface's
    ``buffalo_sc`` pack from the cache, downloaded on first use and checked
    against the manifest's pins (:func:`fetch_pack`).

    Raises
    ------
    ModelError
        The file given does not exist, or the download fails.
    """
    if detector is not None:
        path = Path(detector).expanduser()
        if not path.is_file():
            what = "not a detector file" if path.exists() else "no such detector file"
            raise ModelError(f"{path}: {what} (--detector)")  # a folder, /dev/null
        return path
    override = paths.model_dir_override(model_dir)
    if override is not None and (override / DYNAMIC_FILE).is_file():
        from mesolive.models.registry import list_detectors, resolve_file

        spec = next(d for d in list_detectors() if d.file == DYNAMIC_FILE)
        return resolve_file(spec.file, spec.sha256, "", override)
    return fetch_pack_detector()


def detector_status(model_dir: str | os.PathLike[str] | None = None) -> tuple[bool, str]:
    """Whether a scan finds its detector here, and where from, without downloading it
    (:func:`resolve_detector`'s order; ``doctor``). Checksums are checked on use."""
    from mesolive.models.registry import list_detectors

    override = paths.model_dir_override(model_dir)
    if override is not None and (override / DYNAMIC_FILE).is_file():
        return True, f"{override / DYNAMIC_FILE} (model folder)"
    spec = next((d for d in list_detectors() if d.name == PACK_DETECTOR), None)
    if spec is None:
        return False, f"the model manifest has no {PACK_DETECTOR!r} detector entry"
    cached = _pack_path(spec)
    if cached.is_file():
        return True, f"{cached} (cached)"
    if env_flag("MESOLIVE_OFFLINE"):
        return False, (
            f"{spec.file} is not cached and MESOLIVE_OFFLINE is on: scans fail; "
            f"pass --detector PATH.onnx or --model-dir with {DYNAMIC_FILE}"
        )
    return True, f"downloaded on first use ({spec.file} of insightface's {spec.name} pack)"


def _pack_path(spec: DetectorSpec) -> Path:
    """Where the detector of the pack ``spec`` is cached."""
    return paths.cache_dir() / "models" / spec.name / spec.file


def fetch_pack_detector(*, progress: bool = True) -> Path:
    """``det_500m.onnx`` of insightface's ``buffalo_sc`` pack, from the cache or downloaded.

    The manifest pins the pack's release archive and the detector inside it
    (sha256 and size of both, :class:`~mesolive.models.registry.DetectorSpec`);
    :func:`fetch_pack` does the work.
    """
    from mesolive.models.registry import list_detectors

    spec = next((d for d in list_detectors() if d.name == PACK_DETECTOR), None)
    if spec is None or not spec.url:
        raise ModelError(f"the model manifest has no {PACK_DETECTOR!r} detector entry")
    return fetch_pack(spec, progress=progress)


def fetch_pack(spec: DetectorSpec, *, progress: bool = True) -> Path:
    """The detector ``spec.file`` of the pack ``spec``, from the cache or downloaded.

    The cached file (``<cache>/models/<pack>/<file>``) is used only while its
    sha256 is the pinned one; else it is fetched again. The archive comes from
    the pinned release (``spec.url``) or a mirror holding an archive of the
    same name (``MESOLIVE_DOWNLOAD_BASE``), and both the archive and the file
    extracted from it must match their pins, so a mirror can serve only the
    upstream bytes. ``MESOLIVE_OFFLINE`` forbids downloading.

    Raises
    ------
    ModelError
        The entry has no pins, or it is not cached and downloads are off.
    DownloadError
        No network, a failed download, an archive or file that is not the
        pinned one, or an archive without the file.
    """
    from mesolive.models.download import download, sha256_file

    if not (spec.sha256 and spec.archive_sha256):
        raise ModelError(f"the model manifest pins no sha256 for the {spec.name!r} pack")
    target = _pack_path(spec)
    folder = target.parent
    if target.is_file():
        if sha256_file(target) == spec.sha256:
            return target
        log.warning(
            "%s is not the pinned %s (sha256 differs); fetching it again", target, spec.file
        )
        target.unlink()
    if env_flag("MESOLIVE_OFFLINE"):
        raise ModelError(
            f"{spec.file} of insightface's {spec.name} pack is not cached and "
            "MESOLIVE_OFFLINE is on; pass --detector PATH.onnx or --model-dir with "
            f"{DYNAMIC_FILE}"
        )
    archive = spec.archive or Path(spec.url).name
    base = env_url("MESOLIVE_DOWNLOAD_BASE")
    url = f"{base}/{archive}" if base else spec.url
    zip_path = folder / archive
    log.info("downloading insightface's %s pack for its face detector (%s)", spec.name, url)
    download(url, zip_path, spec.archive_sha256, size=spec.archive_size, progress=progress)
    try:
        _extract_member(zip_path, spec.file, target, spec.size)
    finally:
        zip_path.unlink(missing_ok=True)
    digest = sha256_file(target)
    if digest != spec.sha256:
        target.unlink()
        raise DownloadError(
            f"{archive}: its {spec.file} is not the pinned one (sha256 {digest[:12]}…, "
            f"expected {spec.sha256[:12]}…); nothing was kept"
        )
    return target


def _extract_member(zip_path: Path, member: str, target: Path, size: int) -> None:
    """Copy the archive entry whose base name is ``member`` to ``target`` atomically.

    At most ``size`` bytes (0: :data:`~mesolive.models.download.MAX_DOWNLOAD_BYTES`)
    are extracted, whatever the archive claims.
    """
    from mesolive.models.download import MAX_DOWNLOAD_BYTES

    cap = size or MAX_DOWNLOAD_BYTES
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = [n for n in zf.namelist() if Path(n).name == member]
            if not names:
                raise DownloadError(f"{zip_path.name}: holds no {member}")
            with (
                zf.open(names[0]) as src,
                paths.replacing(target) as tmp,
                open(tmp, "wb") as dst,
            ):
                while chunk := src.read(min(1 << 20, cap + 1 - dst.tell())):
                    if dst.tell() + len(chunk) > cap:
                        raise DownloadError(
                            f"{zip_path.name}: its {member} is larger than the {cap} bytes "
                            "expected; nothing was kept"
                        )
                    dst.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise DownloadError(f"{zip_path.name}: not a valid zip archive ({e})") from e
