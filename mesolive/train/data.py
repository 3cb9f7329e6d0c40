"""Training data: faces cut from labelled images and videos, split by group."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mesolive.classify.preprocess import Preprocess
from mesolive.datasets import Item, collect
from mesolive.errors import InputError
from mesolive.imageio import VIDEO_EXTS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceSet:
    """Decoded faces ready for training.

    Attributes
    ----------
    images
        (n, S, S, 3) uint8 BGR (as OpenCV reads), cut by the model's preprocessing
        contract, which also turns them into network input.
    labels
        (n,) int64, 1 = fake.
    groups
        (n,) str, the video / pair / identity each face belongs to.
    sources
        (n,) str, the data set each face came from (``dfdc``, ``photos``, …).
    kinds
        (n,) str, what each face is (``GAN face (StyleGAN2)``, ``real``, …).
    files
        (n,) str, the image or video each face was cut from (a video gives several).
    """

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    sources: np.ndarray
    kinds: np.ndarray
    files: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(f"images: expected (n, S, S, 3) uint8, got {self.images.shape}")
        for name in ("labels", "groups", "sources", "kinds", "files"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: expected {n} entries, got {len(getattr(self, name))}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx: np.ndarray) -> FaceSet:
        return FaceSet(
            self.images[idx],
            self.labels[idx],
            self.groups[idx],
            self.sources[idx],
            self.kinds[idx],
            self.files[idx],
        )


@dataclass
class LoadSummary:
    """What became of the inputs: every file is counted, none silently dropped."""

    stills: int = 0
    videos: int = 0
    faces: int = 0
    no_face: int = 0
    unreadable: int = 0
    videos_without_face: int = 0

    def line(self) -> str:
        return (
            f"{self.stills} images and {self.videos} videos gave {self.faces} faces; "
            f"{self.no_face} images without a detectable face, {self.unreadable} unreadable, "
            f"{self.videos_without_face} videos without a face (all left out)"
        )


def load_faces(
    items: Sequence[Item],
    contract: Preprocess,
    *,
    max_faces_per_video: int = 60,
    detector: str | None = None,
    model_dir: str | None = None,
    threads: int | None = None,
) -> tuple[FaceSet, LoadSummary]:
    """Cut every item's face(s) by ``contract`` through the live detector (cached), on
    ``threads`` CPU threads.

    Raises
    ------
    InputError
        When nothing usable remains.
    """
    from mesolive.train.faces import NO_FACE, FaceCutter

    images: list[np.ndarray] = []
    meta: list[tuple[int, str, str, str, str]] = []
    stills = [it for it in items if it.path.suffix.lower() not in VIDEO_EXTS]
    videos = [it for it in items if it.path.suffix.lower() in VIDEO_EXTS]
    summary = LoadSummary(stills=len(stills), videos=len(videos))

    def report(done: int, total: int) -> None:
        log.info("faces cut from %d of %d images", done, total)

    with FaceCutter(contract, detector=detector, model_dir=model_dir, threads=threads) as cutter:
        # one run of chunks per data set, so the cache serves any mix of the same sets
        by_source: dict[str, list[Item]] = {}
        for it in stills:
            by_source.setdefault(it.source, []).append(it)
        stills = [it for group in by_source.values() for it in group]
        results = [
            r
            for group in by_source.values()
            for r in cutter.stills([it.path for it in group], on_chunk=report)
        ]
        for it, res in zip(stills, results, strict=True):
            if res.face is None:
                if res.problem == NO_FACE:
                    summary.no_face += 1
                else:
                    summary.unreadable += 1
                if summary.no_face + summary.unreadable <= 10:
                    log.warning("left out %s: %s", it.path, res.problem)
                continue
            images.append(res.face)
            meta.append((it.label, it.group, it.source, it.kind, str(it.path)))
        for it in videos:
            try:
                faces = cutter.video(it.path, max_faces_per_video)
            except InputError as e:
                summary.unreadable += 1
                log.warning("left out %s", e)
                continue
            if not faces:
                summary.videos_without_face += 1
                log.warning("left out %s: no face found in the video", it.path)
                continue
            images += faces
            meta += [(it.label, it.group, it.source, it.kind, str(it.path))] * len(faces)
    summary.faces = len(images)
    log.info("data: %s", summary.line())
    if not images:
        raise InputError(f"no usable training faces in the given data ({summary.line()})")
    labels, groups, sources, kinds, files = zip(*meta, strict=True)
    faces = FaceSet(
        np.stack(images),
        np.array(labels, np.int64),
        np.array(groups),
        np.array(sources),
        np.array(kinds),
        np.array(files),
    )
    return faces, summary


def check_balance(labels: np.ndarray, minimum: int = 20) -> None:
    n_fake = int(labels.sum())
    n_real = int(len(labels) - n_fake)
    if n_real == 0 or n_fake == 0:
        which = "real" if n_real == 0 else "fake"
        raise InputError(f"the data holds no {which} faces; training needs both classes")
    if min(n_real, n_fake) < minimum:
        raise InputError(
            f"too few faces to train on ({n_real} real, {n_fake} fake); "
            f"give at least {minimum} of each"
        )


def split_by_group(
    groups: np.ndarray, labels: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices with no group on both sides.

    Groups are assigned by a hash of their name and the seed, so the split is
    repeatable and independent of file order.
    """
    uniq = np.unique(groups)
    salt = str(seed).encode()
    u = (
        np.array(
            [int.from_bytes(hashlib.sha256(salt + g.encode()).digest()[:8], "big") for g in uniq],
            dtype=np.float64,
        )
        / 2.0**64
    )
    val_groups = set(uniq[u < val_fraction])
    is_val = np.array([g in val_groups for g in groups])
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    for name, idx in (("validation", val_idx), ("training", train_idx)):
        _need_both_classes(
            labels[idx], f"the {name} split holds one class only; give more videos of each class"
        )
    return train_idx, val_idx


def _need_both_classes(labels: np.ndarray, message: str) -> None:
    """Raise :class:`InputError` with ``message`` unless ``labels`` holds both classes."""
    if len(np.unique(labels)) < 2:
        raise InputError(message)


def check_kinds(present: Iterable[str], kinds: Sequence[str], flag: str = "--unseen-kind") -> None:
    """One line naming the kinds the data has, when ``kinds`` (given by ``flag``) names one
    it lacks."""
    have = sorted(set(present))
    for kind in kinds:
        if kind not in have:
            known = ", ".join(map(repr, have[:12])) + (", ..." if len(have) > 12 else "")
            raise InputError(f"{flag} {kind!r}: nothing of that kind (the data has {known})")


def unseen_aside(
    faces: FaceSet, train_idx: np.ndarray, val_idx: np.ndarray, kinds: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Move every face of the named kinds, and of their groups, to validation.

    A kind left out this way is a forgery (or a camera, a source of genuine
    faces) the network never trains on, so its validation says how the
    recipe carries to something new; the rest of each group goes with it
    (a roop swap's genuine target, a Celeb-DF swap's original).

    Raises
    ------
    InputError
        When a kind names no face, or training would keep one class only.
    """
    check_kinds(faces.kinds.tolist(), kinds)
    aside = np.isin(faces.groups, np.unique(faces.groups[np.isin(faces.kinds, kinds)]))
    train_idx = train_idx[~aside[train_idx]]
    val_idx = np.union1d(val_idx, np.flatnonzero(aside))
    _need_both_classes(
        faces.labels[train_idx], "with the unseen kinds left out, training holds one class only"
    )
    return train_idx, val_idx


__all__ = [
    "FaceSet",
    "Item",
    "LoadSummary",
    "check_balance",
    "check_kinds",
    "collect",
    "load_faces",
    "split_by_group",
    "unseen_aside",
]
