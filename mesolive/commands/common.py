"""Helpers shared by the file-based verbs."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mesolive.classify.crops import CropReader
from mesolive.classify.mesonet import MesoClassifier, load_classifier
from mesolive.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileScore:
    path: Path
    logit: float
    fake_score: float


def report_error(err: Exception) -> None:
    """One line on stderr for a bad input that does not stop the run."""
    print(f"mesolive: error: {err}", file=sys.stderr)  # noqa: T201


def open_classifier(args: argparse.Namespace) -> MesoClassifier:
    return load_classifier(
        args.model,
        backend=args.backend,
        model_dir=args.model_dir,
        threads=args.threads,
        progress=sys.stderr.isatty(),
    )


def _batches(
    reader: CropReader, files: Sequence[Path], batch: int, errors: list[InputError]
) -> Iterator[tuple[list[Path], list[np.ndarray]]]:
    paths: list[Path] = []
    crops: list[np.ndarray] = []
    for f in files:
        try:
            crops.append(reader.read(f))
        except InputError as e:
            report_error(e)
            errors.append(e)
            continue
        paths.append(f)
        if len(paths) == batch:
            yield paths, crops
            paths, crops = [], []
    if paths:
        yield paths, crops


def score_files(
    classifier: MesoClassifier,
    files: Sequence[Path],
    batch: int = 32,
    *,
    detector: str | None = None,
    model_dir: str | None = None,
) -> tuple[list[FileScore], list[InputError]]:
    """Score face-crop files in batches, framed by the model's contract.

    Bad files are reported and skipped. ``detector``/``model_dir`` choose the
    detector a ``recut`` contract finds faces with (:mod:`mesolive.classify.crops`).
    """
    if batch < 1:
        raise InputError(f"--batch must be at least 1, got {batch}")
    results: list[FileScore] = []
    errors: list[InputError] = []
    with CropReader(classifier.preprocess, detector=detector, model_dir=model_dir) as reader:
        scored = [
            (paths, classifier.score(crops))
            for paths, crops in _batches(reader, files, batch, errors)
        ]
    for paths, s in scored:
        results.extend(
            FileScore(p, float(lg), float(fk))
            for p, lg, fk in zip(paths, s.logit, s.fake, strict=True)
        )
    return results, errors
