"""One frame in, every face's track, scores and verdict out: the engine under GUI and scan.

For each frame :meth:`FramePipeline.process` runs, on every ``every``-th
frame (an *analysed* frame):

1. **detect**: SCRFD finds faces and five keypoints (:mod:`mesolive.detect.scrfd`);
2. **crop**: every face cut by each model's preprocessing contract (the
   authors' crop at the model's scale, one ``warpAffine`` each) into one
   (n, 256, 256, 3) array per contract (:mod:`mesolive.classify.preprocess`);
3. **classify**: the whole batch through each model in one runner call; a
   face's fake score is the mean over the models;
4. **track**: detections join tracks by IoU; each track's running scores
   and verdict are updated (:mod:`mesolive.track`).

On the frames in between only the tracks' boxes move (constant velocity);
nothing runs on the networks. No Qt here: the GUI's worker thread and
``mesolive scan`` both drive this object, from one thread.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field, replace

import numpy as np

from mesolive.errors import InputError
from mesolive.types import FaceResult, Frame, FrameResult, StageTimings, TrackSummary

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
    backend, model_dir, threads, precision
        As the CLI options of the same names.
    """

    models: tuple[str, ...] = field(default_factory=lambda: (_default_model(),))
    detector: str | None = None
    det_size: int | None = None
    det_threshold: float = 0.5
    every: int = 1
    threshold: float = 0.5
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
        if not 0.0 < self.det_threshold < 1.0:
            raise InputError(f"detector threshold {self.det_threshold}: expected a value in (0, 1)")
        if self.det_size is not None and not 32 <= self.det_size <= 2048:
            raise InputError(f"--det-size {self.det_size}: expected 32 to 2048 pixels")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads {self.threads}: expected a whole number ≥ 1")


@dataclass
class _TrackRecord:
    score: object  # RunningScore
    timeline: object  # Timeline
    first_frame: int
    last_frame: int
    frames_seen: int = 0
    model_scores: dict[str, float] = field(default_factory=dict)


class FramePipeline:
    """Detector, crop, classifiers and tracker for one stream of frames.

    Build, use and close it in one thread (the one that calls
    :meth:`process`): the ONNX Runtime sessions (and any CUDA context)
    belong to it.

    Attributes
    ----------
    backend
        What runs the classifiers, e.g. ``"onnxruntime-cpu"``.
    detector_name
        The detector file, its input size and provider.

    Raises
    ------
    MesoliveError
        A model or the detector cannot be found, downloaded or loaded
        (``ModelError``), a back end is missing, or the config is invalid.
    """

    def __init__(self, config: PipelineConfig) -> None:
        from mesolive.classify.mesonet import load_classifier
        from mesolive.detect.scrfd import ScrfdDetector, resolve_detector
        from mesolive.track.iou_tracker import IouTracker
        from mesolive.track.smoothing import VerdictRule

        self.config = config
        self.rule = VerdictRule(threshold=config.threshold)
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
        log.info(
            "detector: %s; classifiers: %s on %s",
            self.detector_name,
            ", ".join(config.models),
            self.backend,
        )
        self.tracker = IouTracker(max_missed=max(15, 2 * config.every))
        self._records: dict[int, _TrackRecord] = {}
        self._processed = 0
        self._analysed = 0

    # -- per frame ----------------------------------------------------------------------

    def set_threshold(self, value: float) -> None:
        """Move the fake-score threshold of the verdicts from the next frame on.

        Tracks keep their history: frames already counted in the paper's share
        stay counted at the threshold they were scored under, and a track's
        live verdict moves to the new bands at its next scored frame. Call it
        from the thread that calls :meth:`process`.
        """
        # PipelineConfig checks the value as it does at start (InputError outside (0, 1))
        self.config = replace(self.config, threshold=float(value))
        self.rule = replace(self.rule, threshold=self.config.threshold)
        for rec in self._records.values():
            rec.score.rule = self.rule  # type: ignore[attr-defined]

    def process(self, frame: Frame) -> FrameResult:
        """Analyse (or track through) one frame.

        Returns
        -------
        FrameResult
            One :class:`FaceResult` per visible face, by track ID; an empty
            ``faces`` is the normal "no face" state.
        """
        image = frame.image
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 BGR frame, got {image.shape} {image.dtype}"
            )
        analysed = self._processed % self.config.every == 0
        self._processed += 1
        if analysed:
            faces, timings = self._analyse(frame)
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
        )

    def _analyse(self, frame: Frame) -> tuple[list[FaceResult], StageTimings]:
        t0 = time.perf_counter()
        dets = self.detector.detect(frame.image)
        t1 = time.perf_counter()
        n = len(dets)
        scores: list[np.ndarray] = []
        if n:
            # one cut and one batch per contract: models that see faces alike share them
            batches = {}
            for clf in self.classifiers:
                c = clf.preprocess
                if c not in batches:
                    batches[c] = c.to_batch(c.cut(frame.image, dets.kps))
            t2 = time.perf_counter()
            scores = [clf.run_batch(batches[clf.preprocess]).fake for clf in self.classifiers]
            t3 = time.perf_counter()
        else:
            t2 = t3 = t1
        pairs = self.tracker.update(dets, frame.index)
        mean = np.mean(np.stack(scores), axis=0) if n else np.zeros(0, np.float32)
        faces = []
        for track, i in pairs:
            rec = self._record(track)
            model_scores = {
                name: float(s[i]) for name, s in zip(self.config.models, scores, strict=True)
            }
            fake = float(mean[i])
            rec.score.add(fake, model_scores)
            rec.timeline.append(frame.index, frame.pts, fake)
            rec.frames_seen += 1
            rec.last_frame = track.last_frame
            faces.append(self._face(track.track_id, dets.xyxy[i], dets.kps[i], fake, model_scores))
        faces.sort(key=lambda f: f.track_id)
        t4 = time.perf_counter()
        return faces, StageTimings(detect=t1 - t0, crop=t2 - t1, classify=t3 - t2, track=t4 - t3)

    def _carry(self, frame: Frame) -> list[FaceResult]:
        """Faces of a frame between analysed ones: boxes moved, scores kept."""
        faces = []
        for track in self.tracker.visible():
            box, kps = track.predict(frame.index)
            h, w = frame.image.shape[:2]
            box = box.copy()
            np.clip(box[0::2], 0, w, out=box[0::2])
            np.clip(box[1::2], 0, h, out=box[1::2])
            rec = self._record(track)
            rec.frames_seen += 1
            faces.append(self._face(track.track_id, box, kps, None, {}))
        faces.sort(key=lambda f: f.track_id)
        return faces

    def _record(self, track) -> _TrackRecord:
        rec = self._records.get(track.track_id)
        if rec is None:
            from mesolive.track.smoothing import RunningScore, Timeline

            rec = _TrackRecord(
                RunningScore(self.rule), Timeline(), track.first_frame, track.last_frame
            )
            self._records[track.track_id] = rec
        return rec

    def _face(
        self,
        track_id: int,
        xyxy: np.ndarray,
        kps: np.ndarray,
        fake: float | None,
        model_scores: dict[str, float],
    ) -> FaceResult:
        s = self._records[track_id].score
        return FaceResult(
            track_id=track_id,
            xyxy=np.array(xyxy, np.float32),
            kps=np.array(kps, np.float32),
            fake_score=fake,
            model_scores=model_scores,
            running_score=float(s.running),
            window_score=s.window_mean,
            fake_share=s.fake_share,
            n_scored=s.n_scored,
            verdict=s.verdict,
        )

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
        out = []
        for tid in sorted(self._records):
            rec = self._records[tid]
            s = rec.score
            out.append(
                TrackSummary(
                    track_id=tid,
                    first_frame=rec.first_frame,
                    last_frame=rec.last_frame,
                    frames_seen=rec.frames_seen,
                    n_scored=s.n_scored,
                    mean_score=float(s.mean),
                    fake_share=float(s.fake_share),
                    verdict=self.rule.summary(s.n_fake, s.n_scored, self._analysed),
                    timeline=rec.timeline.points(),
                    model_means=s.model_means(),
                    running_score=float(s.running),
                )
            )
        return out

    def reset(self) -> None:
        """Forget every track (a new source begins); the models stay loaded."""
        self.tracker.reset()
        self._records = {}
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
