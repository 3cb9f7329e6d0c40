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
from mesolive.errors import InputError, MesoliveError, check_count, describe
from mesolive.redact import redact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileScore:
    """One crop file's score; ``face_found`` is False where a model that re-cuts crops
    found no face in it and read it whole (None: the model reads crops whole anyway)."""

    path: Path
    logit: float
    fake_score: float
    face_found: bool | None = None


def report_error(err: Exception) -> None:
    """One line on stderr for a bad input that does not stop the run, as main() prints the
    error that does (a password or token in it masked)."""
    print(f"mesolive: error: {redact(str(err))}", file=sys.stderr)  # noqa: T201


def open_classifier(args: argparse.Namespace) -> MesoClassifier:
    """The classifier the verb's options name, after checking its counts (before any output)."""
    check_count("--batch", args.batch)
    return load_classifier(
        args.model,
        backend=args.backend,
        model_dir=args.model_dir,
        threads=args.threads,
        progress=sys.stderr.isatty(),
        precision=args.precision,
    )


def _read(reader: CropReader, path: Path) -> np.ndarray:
    """One file's face, framed; any failure on it becomes that file's InputError."""
    try:
        return reader.read(path)
    except MesoliveError:
        raise  # a bad file is an InputError; a missing model ends the run
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from e
    except Exception as e:  # a library failing on one file must not end the run
        log.debug("reading %s failed", path, exc_info=True)
        raise InputError(f"{path}: {describe(e)}") from e


def _batches(
    reader: CropReader, files: Sequence[Path], batch: int, errors: list[InputError]
) -> Iterator[tuple[list[Path], list[np.ndarray]]]:
    paths: list[Path] = []
    crops: list[np.ndarray] = []
    for f in files:
        try:
            crops.append(_read(reader, f))
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


def stream_scores(
    classifier: MesoClassifier,
    files: Sequence[Path],
    batch: int,
    errors: list[InputError],
    *,
    detector: str | None = None,
    model_dir: str | None = None,
    threads: int | None = None,
) -> Iterator[list[FileScore]]:
    """Score face-crop files batch by batch, framed by the model's contract.

    Yields each batch's scores as soon as it is classified. A bad file is
    reported on stderr when it is met, appended to ``errors`` and skipped.
    ``detector``/``model_dir`` choose the detector a ``recut`` contract finds
    faces with (:mod:`mesolive.classify.crops`), ``threads`` its CPU threads.
    """
    check_count("--batch", batch)
    recut = classifier.preprocess.precut != "as-is"
    with CropReader(
        classifier.preprocess, detector=detector, model_dir=model_dir, threads=threads
    ) as reader:
        for paths, crops in _batches(reader, files, batch, errors):
            s = classifier.score(crops)
            yield [
                FileScore(p, float(lg), float(fk), str(p) not in reader.unframed if recut else None)
                for p, lg, fk in zip(paths, s.logit, s.fake, strict=True)
            ]


def score_files(
    classifier: MesoClassifier,
    files: Sequence[Path],
    batch: int = 32,
    *,
    detector: str | None = None,
    model_dir: str | None = None,
    threads: int | None = None,
) -> tuple[list[FileScore], list[InputError]]:
    """All of :func:`stream_scores` at once: (scores, errors)."""
    errors: list[InputError] = []
    where = {"detector": detector, "model_dir": model_dir, "threads": threads}
    results = [r for rows in stream_scores(classifier, files, batch, errors, **where) for r in rows]
    return results, errors
