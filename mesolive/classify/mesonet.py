"""MesoNet scoring on top of any :class:`~mesolive.backends.base.Runner`."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mesolive.backends.base import Runner, split_batches
from mesolive.classify.preprocess import AUTHORS, Preprocess, fake_score
from mesolive.models.onnx_graph import INPUT_NAME, LOGIT_NAME

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceScores:
    """Scores of one batch of faces.

    Attributes
    ----------
    logit
        (n,) float32 pre-sigmoid output of the network (positive: real).
    fake
        (n,) float32 fake score in [0, 1], ``1 - sigmoid(logit)``.
    """

    logit: np.ndarray
    fake: np.ndarray


class MesoClassifier:
    """Face crops in, one fake score per face out.

    Batches larger than the runner's ``max_batch`` are split; the runner is
    owned (and closed) by this object. ``preprocess`` is the model's contract:
    every crop is cut and batched through it.

    mesolive's graphs read uint8 crops (:meth:`Preprocess.pixels`), written
    straight into the runner's input buffer; a graph that reads the float
    batch (``build_onnx`` without a contract, as ``mesolive train`` checks
    its export) gets :meth:`Preprocess.to_batch`.
    """

    def __init__(
        self, runner: Runner, model_name: str = "", preprocess: Preprocess = AUTHORS
    ) -> None:
        self.runner = runner
        self.model_name = model_name
        self.preprocess = preprocess
        self.reads_pixels = runner.input_specs[0].dtype == np.uint8

    @property
    def backend(self) -> str:
        return self.runner.name

    def warmup(self, batch: int = 1) -> None:
        self.runner.warmup(batch)

    def run_batch(self, batch: np.ndarray) -> FaceScores:
        """Score a batch of the runner's input (:meth:`batch`, :meth:`cut`)."""
        logits = np.empty(len(batch), dtype=np.float32)
        for sl in split_batches(len(batch), self.runner.max_batch):
            out = self.runner.infer({INPUT_NAME: batch[sl]})
            logits[sl] = np.asarray(out[LOGIT_NAME], dtype=np.float32).reshape(-1)
        p_real = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        return FaceScores(logits, fake_score(p_real))

    def batch(self, crops: Sequence[np.ndarray] | np.ndarray, order: str = "bgr") -> np.ndarray:
        """uint8 face crops of any size → the runner's input, by :attr:`preprocess`.

        ``order`` is the crops' channel order (``bgr`` as OpenCV reads).
        """
        if not self.reads_pixels:
            return self.preprocess.to_batch(crops, order)
        return self.preprocess.pixels(crops, order, out=self.runner.input_buffer(len(crops)))

    def cut(self, image: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """Every face of an (H, W, 3) uint8 BGR frame → the runner's input.

        ``kps`` is (n, 5, 2) keypoints in frame pixels; the faces are cut by
        :attr:`preprocess`'s rule straight into the runner's input buffer.
        """
        if not self.reads_pixels:
            return self.preprocess.to_batch(self.preprocess.cut(image, kps))
        return self.preprocess.cut(image, kps, out=self.runner.input_buffer(len(kps)))

    def score(self, crops: Sequence[np.ndarray] | np.ndarray, order: str = "bgr") -> FaceScores:
        """Score uint8 face crops of any size, cut by :attr:`preprocess`'s rule.

        ``order`` is the crops' channel order (``bgr`` as OpenCV reads).
        """
        if len(crops) == 0:
            empty = np.zeros(0, dtype=np.float32)
            return FaceScores(empty, empty)
        return self.run_batch(self.batch(crops, order))

    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> MesoClassifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_classifier(
    name: str,
    *,
    backend: str = "auto",
    model_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    progress: bool = True,
    precision: str = "auto",
) -> MesoClassifier:
    """Build a classifier for a registered model on the chosen back end.

    ``precision`` (``auto``, ``fp32``, ``int8``) picks the graph ONNX Runtime
    runs on the CPU (:func:`mesolive.backends.select.open_runner`).

    Raises
    ------
    ModelError
        Unknown model, or a contract no path can honour (before anything loads).
    """
    from mesolive.backends.select import open_runner
    from mesolive.models.registry import get_spec

    contract = get_spec(name).preprocess
    runner = open_runner(
        name,
        backend=backend,
        model_dir=model_dir,
        threads=threads,
        progress=progress,
        precision=precision,
    )
    return MesoClassifier(runner, name, contract)
