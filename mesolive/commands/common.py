"""Helpers shared by the file-based verbs."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mesolive.classify.mesonet import MesoClassifier, load_classifier
from mesolive.classify.preprocess import to_batch
from mesolive.errors import InputError
from mesolive.imageio import read_image

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
    files: Sequence[Path], batch: int, errors: list[InputError]
) -> Iterator[tuple[list[Path], np.ndarray]]:
    paths: list[Path] = []
    crops: list[np.ndarray] = []
    for f in files:
        try:
            crops.append(read_image(f))
        except InputError as e:
            report_error(e)
            errors.append(e)
            continue
        paths.append(f)
        if len(paths) == batch:
            yield paths, to_batch(crops)
            paths, crops = [], []
    if paths:
        yield paths, to_batch(crops)


def score_files(
    classifier: MesoClassifier, files: Sequence[Path], batch: int = 32
) -> tuple[list[FileScore], list[InputError]]:
    """Score image files in batches; bad files are reported and skipped."""
    if batch < 1:
        raise InputError(f"--batch must be at least 1, got {batch}")
    results: list[FileScore] = []
    errors: list[InputError] = []
    for paths, x in _batches(files, batch, errors):
        s = classifier.run_batch(x)
        results.extend(
            FileScore(p, float(lg), float(fk))
            for p, lg, fk in zip(paths, s.logit, s.fake, strict=True)
        )
    return results, errors
