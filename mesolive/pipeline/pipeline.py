"""One frame in, every face's track, scores and verdict out: the engine under GUI and scan.

For each frame :meth:`FramePipeline.process` runs, on every ``every``-th
frame (an *analysed* frame):

1. **detect**: SCRFD finds faces and five keypoints (:mod:`mesolive.detect.scrfd`);
2. **crop**: every face large enough to judge (its span at least
   ``min_face_span``, :data:`~mesolive.align.spans.MIN_FACE_SPAN_PX`) cut by
   each model's preprocessing contract (the authors' crop at the model's
   scale, one ``warpAffine`` each) into one (n, 256, 256, 3) uint8 array per
   contract, the classifier runner's own input buffer
   (:mod:`mesolive.classify.preprocess`); the graphs scale and reorder the
   colours themselves;
3. **classify**: the whole batch through each model in one runner call; a
   face's fake score is the mean over the models;
4. **track**: detections join tracks by IoU, smaller faces too; each track's
   running scores, verdict and alert state are updated by one judge under one
   rule (:mod:`mesolive.track.judge`), a face too small to judge with no
   score, and every ``FrameResult`` carries the threshold it was judged with.

On the frames in between only the tracks' boxes move (constant velocity);
nothing runs on the networks. No Qt here: the GUI's worker thread and
``mesolive scan`` both drive this object, from one thread.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from mesolive.align.spans import MIN_FACE_SPAN_PX, face_spans
from mesolive.env import check_threads
from mesolive.errors import InputError
from mesolive.pipeline.mailbox import put_unless_stopped
from mesolive.track.judge import source_time
from mesolive.types import (
    FAKE_THRESHOLD,
    FaceDetections,
    FaceResult,
    Frame,
    FrameResult,
    StageTimings,
    TrackSummary,
)

if TYPE_CHECKING:
    from mesolive.track.smoothing import VerdictRule

log = logging.getLogger(__name__)


def _default_model() -> str:
    from mesolive.models.registry import default_model

    return default_model()


@dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline runs; immutable, so it can cross threads.

    Attributes
    ----------
    models
        Classifier names run together (``meso4-df``, ``meso4-f2f``, …); by
        default the registry's default model.
    detector
        An SCRFD ONNX file; None: the default (see
        :func:`mesolive.detect.scrfd.resolve_detector`).
    det_size
        Detector input side in pixels; None: the default (320).
    det_threshold
        Minimum detector score of a face.
    every
        Detect and classify every ``every``-th frame; track in between.
    threshold
        Fake-score threshold of the verdicts and of the paper's share.
    alert_seconds
        How long a face's live verdict must stay FAKE to raise an alert.
    reid_seconds
        How long a face that left keeps its ID for when it returns, by its
        look (:mod:`mesolive.track.appearance`); 0: faces are followed by
        position and size alone.
    min_face_span
        Faces whose span (:func:`~mesolive.align.spans.face_spans`, frame
        pixels) is below this are tracked but not classified: they are
        ``too_small`` (:data:`~mesolive.align.spans.MIN_FACE_SPAN_PX` says
        why); 0 judges every face.
    backend, model_dir, threads, precision
        As the CLI options of the same names.
    """

    models: tuple[str, ...] = field(default_factory=lambda: (_default_model(),))
    detector: str | None = None
    det_size: int | None = None
    det_threshold: float = 0.5
    every: int = 1
    threshold: float = FAKE_THRESHOLD
    alert_seconds: float = 3.0
    reid_seconds: float = 10.0
    min_face_span: float = MIN_FACE_SPAN_PX
    backend: str = "auto"
    model_dir: str | None = None
    threads: int | None = None
    precision: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.models, str):
            object.__setattr__(self, "models", (self.models,))
        else:
            object.__setattr__(self, "models", tuple(self.models))
        if not self.models:
            raise InputError("give at least one model (--models)")
        if len(set(self.models)) != len(self.models):
            raise InputError(f"--models lists a model twice: {' '.join(self.models)}")
        if not isinstance(self.every, int) or self.every < 1:
            raise InputError(f"--every {self.every}: expected a whole number ≥ 1")
        if not 0.0 < self.threshold < 1.0:
            raise InputError(f"--threshold {self.threshold}: expected a value in (0, 1)")
        if not self.alert_seconds >= 0:  # also NaN
            raise InputError(f"alert time {self.alert_seconds}: expected seconds ≥ 0")
        if not self.reid_seconds >= 0:
            raise InputError(f"--reid-seconds {self.reid_seconds}: expected seconds ≥ 0")
        if not self.min_face_span >= 0:
            raise InputError(f"minimum face span {self.min_face_span}: expected pixels ≥ 0")
        if not 0.0 < self.det_threshold < 1.0:
            raise InputError(f"detector threshold {self.det_threshold}: expected a value in (0, 1)")
        if self.det_size is not None and not 32 <= self.det_size <= 2048:
            raise InputError(f"--det-size {self.det_size}: expected 32 to 2048 pixels")
        check_threads(self.threads)


PIPELINE_MODULES = (
    "cv2",
    "h5py",
    "onnx",
    "onnxruntime",
    "mesolive.align.crop",
    "mesolive.align.identity",
    "mesolive.backends.onnxruntime",
    "mesolive.backends.openvino",
    "mesolive.backends.select",
    "mesolive.backends.tensorrt",
    "mesolive.classify.mesonet",
    "mesolive.detect.scrfd",
    "mesolive.models.convert",
    "mesolive.models.cpu_precision",
    "mesolive.models.keras_h5",
    "mesolive.models.onnx_graph",
    "mesolive.models.registry",
    "mesolive.track.appearance",
    "mesolive.track.iou_tracker",
)
"""What building a :class:`FramePipeline` imports on first use (it imports lazily)."""


def preload() -> None:
    """Import :data:`PIPELINE_MODULES` in the calling thread (at once after the first call).

    The app calls it on its GUI thread before a worker thread builds a
    pipeline. Once PySide6 is imported, its import hook (shiboken's feature
    import) reads the source of every Python module imported anywhere, and a
    worker thread's first import of onnx, ml_dtypes or h5py while the Qt
    event loop ran was seen never to return. On a CPU with bfloat16, where
    ``--precision auto`` may run OpenVINO, OpenVINO is imported here too
    (where installed; through :func:`~mesolive.backends.openvino.import_openvino`,
    which keeps its telemetry off).
    """
    import importlib

    from mesolive.backends.cpuinfo import bf16_flags
    from mesolive.backends.openvino import openvino_version

    for name in PIPELINE_MODULES:
        importlib.import_module(name)
    if bf16_flags():
        openvino_version()


@dataclass(frozen=True)
class _Detected:
    """A frame between the pipeline's two halves: its detections (None: not analysed)."""

    frame: Frame
    dets: FaceDetections | None
    seconds: float  # the detector's time on it


class FramePipeline:
    """Detector, crop, classifiers and tracker for one stream of frames.

    Build, use and close it in one thread (the one that calls
    :meth:`process`): the ONNX Runtime sessions (and any CUDA context)
    belong to it. :meth:`stream` lends the detector to a thread of its own
    while the stream runs.

    Attributes
    ----------
    backend
        What runs the classifiers, e.g. ``"onnxruntime-cpu"``.
    detector_name
        The detector file, its input size and provider.
    det_size
        The side of the detector's input as it runs: the config's
        ``det_size`` with the default, the rounding to SCRFD's stride and a
        fixed-size file resolved.

    Raises
    ------
    MesoliveError
        A model or the detector cannot be found, downloaded or loaded
        (``ModelError``), a back end is missing, or the config is invalid.
    """

    def __init__(self, config: PipelineConfig) -> None:
        from mesolive.classify.mesonet import load_classifier
        from mesolive.detect.scrfd import ScrfdDetector, resolve_detector
        from mesolive.track.appearance import LbpDescriber
        from mesolive.track.iou_tracker import IouTracker
        from mesolive.track.judge import TrackJudge
        from mesolive.track.smoothing import VerdictRule

        self.config = config
        self.judge = TrackJudge(
            VerdictRule(threshold=config.threshold, alert_seconds=config.alert_seconds)
        )
        self.classifiers = []
        self.detector = None
        try:
            for name in config.models:
                self.classifiers.append(
                    load_classifier(
                        name,
                        backend=config.backend,
                        model_dir=config.model_dir,
                        threads=config.threads,
                        progress=sys.stderr.isatty(),
                        precision=config.precision,
                    )
                )
            for clf in self.classifiers:
                clf.warmup(1)
            backends = list(dict.fromkeys(c.backend for c in self.classifiers))
            self.backend = "+".join(backends)
            path = resolve_detector(config.detector, config.model_dir)
            self.detector = ScrfdDetector(
                path,
                det_size=config.det_size,
                threshold=config.det_threshold,
                device=_detector_device(backends, config.backend),
                threads=config.threads,
            )
        except BaseException:
            self.close()
            raise
        self.detector_name = self.detector.name
        self.det_size = max(self.detector.input_size)
        log.info(
            "detector: %s; classifiers: %s on %s",
            self.detector_name,
            ", ".join(config.models),
            self.backend,
        )
        self.tracker = IouTracker(
            max_missed=max(15, 2 * config.every),
            describe=LbpDescriber() if config.reid_seconds > 0 else None,
            reid_seconds=config.reid_seconds,
        )
        self._processed = 0
        self._analysed = 0

    # -- per frame ----------------------------------------------------------------------

    @property
    def rule(self) -> VerdictRule:
        """The rule the faces are judged by (threshold, bands, alert time)."""
        return self.judge.rule

    def set_rule(self, *, threshold: float, alert_seconds: float) -> None:
        """Judge with this threshold and alert time from the next frame on.

        Tracks keep their history: frames already counted in the paper's share
        stay counted at the threshold they were scored under, and a track's
        live verdict moves to the new bands at its next scored frame. Call it
        from the thread that calls :meth:`process`.

        Raises
        ------
        InputError
            A value :class:`PipelineConfig` refuses (a threshold outside (0, 1)).
        """
        self.config = replace(
            self.config, threshold=float(threshold), alert_seconds=float(alert_seconds)
        )
        self.judge.set_rule(
            replace(
                self.rule,
                threshold=self.config.threshold,
                alert_seconds=self.config.alert_seconds,
            )
        )

    def set_every(self, every: int) -> None:
        """Analyse every ``every``-th frame from the next frame on (the "auto" interval).

        Tracks and their history stay; the next analysed frame comes at most
        ``every`` frames after the last one. Call it from the thread that
        calls :meth:`process`.

        Raises
        ------
        InputError
            Not a whole number ≥ 1.
        """
        self.config = replace(self.config, every=every)
        self.tracker.max_missed = max(15, 2 * every)  # as at start: tracks outlive the gaps

    def process(self, frame: Frame) -> FrameResult:
        """Analyse (or track through) one frame.

        Returns
        -------
        FrameResult
            One :class:`FaceResult` per visible face, by track ID; an empty
            ``faces`` is the normal "no face" state.
        """
        return self._finish(self._detect(frame))

    def stream(self, frames: Iterable[Frame], depth: int = 2) -> Iterator[FrameResult]:
        """:meth:`process` over ``frames``, the next frames' detection overlapping this one's rest.

        A thread of the pipeline's own takes frames from ``frames`` and runs
        the detector on them, at most ``depth`` frames ahead; this thread
        cuts, classifies, tracks and judges them in order. The detector's
        session is used by that thread alone while the stream runs, the
        classifiers' and the tracker's by this one. Whatever ``frames`` or
        the detector raises is raised here, after the results of the frames
        before it. Closing the generator (``break``, an exception, Ctrl+C)
        stops the thread and waits for it; no frame is dropped.
        """
        items: queue.Queue[_Detected | BaseException | None] = queue.Queue(maxsize=depth)
        stop = threading.Event()

        def put(item: _Detected | BaseException | None) -> bool:
            return put_unless_stopped(items, item, stop)

        def detect_ahead() -> None:
            try:
                for frame in frames:
                    if not put(self._detect(frame)):
                        return
            except Exception as e:  # noqa: BLE001 (raised again by the consumer, in order)
                put(e)
                return
            put(None)

        worker = threading.Thread(target=detect_ahead, name="mesolive-detect", daemon=True)
        worker.start()
        try:
            while (item := items.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield self._finish(item)
        finally:
            stop.set()
            worker.join(5.0)

    def _detect(self, frame: Frame) -> _Detected:
        """The first half of :meth:`process`: check the frame; on an analysed one, detect."""
        image = frame.image
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 BGR frame, got {image.shape} {image.dtype}"
            )
        analysed = self._processed % self.config.every == 0
        self._processed += 1
        if not analysed:
            return _Detected(frame, None, 0.0)
        t0 = time.perf_counter()
        dets = self.detector.detect(image)
        return _Detected(frame, dets, time.perf_counter() - t0)

    def _finish(self, detected: _Detected) -> FrameResult:
        """The second half of :meth:`process`: crop, classify, track and judge."""
        frame = detected.frame
        analysed = detected.dets is not None
        if detected.dets is not None:
            faces, timings = self._analyse(frame, detected.dets, detected.seconds)
            self._analysed += 1
        else:
            t0 = time.perf_counter()
            faces = self._carry(frame)
            timings = StageTimings(track=time.perf_counter() - t0)
        return FrameResult(
            frame=frame,
            faces=tuple(faces),
            timings=timings,
            latency=max(0.0, time.monotonic() - frame.t_capture),
            analysed=analysed,
            backend=self.backend,
            threshold=self.rule.threshold,
            merged=tuple(self.tracker.merged.items()) if analysed else (),
        )

    def _analyse(
        self, frame: Frame, dets: FaceDetections, t_detect: float
    ) -> tuple[list[FaceResult], StageTimings]:
        t1 = time.perf_counter()
        judged = self._judged(dets)
        scores: list[np.ndarray] = []
        if len(judged):
            kps = dets.kps if len(judged) == len(dets) else dets.kps[judged]
            # one cut per contract, straight into the first such classifier's input
            # buffer: models that see faces alike share it
            batches = {}
            for clf in self.classifiers:
                key = (clf.preprocess, clf.reads_pixels)
                if key not in batches:
                    batches[key] = clf.cut(frame.image, kps)
            t2 = time.perf_counter()
            scores = [
                clf.run_batch(batches[clf.preprocess, clf.reads_pixels]).fake
                for clf in self.classifiers
            ]
            t3 = time.perf_counter()
        else:
            t2 = t3 = t1
        pairs = self.tracker.update(dets, frame.index, image=frame.image, now=source_time(frame))
        for young, earlier in self.tracker.merged.items():
            self.judge.fold(young, earlier)
        mean = np.mean(np.stack(scores), axis=0) if scores else np.zeros(0, np.float32)
        row = np.full(len(dets), -1)  # detection → its row in the scores; -1: too small
        row[judged] = np.arange(len(judged))
        faces = []
        analysed = self._analysed + 1  # this frame included
        for track, i in pairs:
            if not track.confirmed:  # a first sighting: shown and judged from its second
                continue
            j = int(row[i])
            if j < 0:
                fake, model_scores = None, {}
            else:
                fake = float(mean[j])
                model_scores = {
                    name: float(s[j]) for name, s in zip(self.config.models, scores, strict=True)
                }
            faces.append(
                self.judge.face(
                    track.track_id,
                    frame,
                    dets.xyxy[i],
                    dets.kps[i],
                    fake,
                    model_scores,
                    analysed=analysed,
                    too_small=j < 0,
                )
            )
        faces.sort(key=lambda f: f.track_id)
        t4 = time.perf_counter()
        return faces, StageTimings(detect=t_detect, crop=t2 - t1, classify=t3 - t2, track=t4 - t3)

    def _judged(self, dets: FaceDetections) -> np.ndarray:
        """Indices of the detections large enough to judge (span ≥ ``min_face_span``)."""
        return np.flatnonzero(face_spans(dets.kps) >= self.config.min_face_span)

    def _carry(self, frame: Frame) -> list[FaceResult]:
        """Faces of a frame between analysed ones: boxes moved, scores kept."""
        faces = []
        for track in self.tracker.visible():
            box, kps = track.predict(frame.index)
            h, w = frame.image.shape[:2]
            box = box.copy()
            np.clip(box[0::2], 0, w, out=box[0::2])
            np.clip(box[1::2], 0, h, out=box[1::2])
            faces.append(self.judge.face(track.track_id, frame, box, kps, analysed=self._analysed))
        faces.sort(key=lambda f: f.track_id)
        return faces

    # -- session -----------------------------------------------------------------------

    @property
    def frames_processed(self) -> int:
        return self._processed

    @property
    def frames_analysed(self) -> int:
        return self._analysed

    def summaries(self) -> list[TrackSummary]:
        """Every track since the last :meth:`reset`, by ID, with the paper's verdict.

        A track needs ``min_scored`` (5) scored frames for a verdict, or all
        the analysed frames of a shorter input (a photo).
        """
        return self.judge.summaries(self._analysed)

    def reset(self) -> None:
        """Forget every track (a new source begins); the models stay loaded."""
        self.tracker.reset()
        self.judge.reset()
        self._processed = 0
        self._analysed = 0

    def close(self) -> None:
        """Free the detector and the classifiers. Idempotent."""
        if self.detector is not None:
            self.detector.close()
            self.detector = None
        for clf in self.classifiers:
            clf.close()
        self.classifiers = []

    def __enter__(self) -> FramePipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _detector_device(classifier_backends: list[str], backend: str) -> str:
    """The detector follows the classifier: CUDA when the classifier runs on the GPU.

    TensorRT engines exist only for MesoNet; the detector then uses ONNX
    Runtime's CUDA provider where this onnxruntime has it.
    """
    if backend == "onnxruntime-cpu":
        return "cpu"
    on_gpu = any(("cuda" in b) or ("tensorrt" in b) for b in classifier_backends)
    if on_gpu:
        from mesolive.backends.onnxruntime import available_providers

        if "CUDAExecutionProvider" in available_providers():
            return "cuda"
        log.info("detector runs on the CPU: onnxruntime has no CUDA provider here")
    return "cpu"
