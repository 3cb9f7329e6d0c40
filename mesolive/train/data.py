"""Training data: decoded faces from labelled crops and videos, split by video."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from mesolive.classify.preprocess import resize_nearest
from mesolive.datasets import VIDEO_EXTS, Item, collect
from mesolive.errors import InputError
from mesolive.imageio import read_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceSet:
    """Decoded faces ready for training.

    Attributes
    ----------
    images
        (n, 256, 256, 3) uint8 RGB, resized by nearest neighbour like inference.
    labels
        (n,) int64, 1 = fake.
    groups
        (n,) str, the video each face belongs to.
    """

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx: np.ndarray) -> FaceSet:
        return FaceSet(self.images[idx], self.labels[idx], self.groups[idx])


def _load_image(item: Item) -> tuple[np.ndarray | None, str]:
    try:
        bgr = read_image(item.path)
    except InputError as e:
        return None, str(e)
    return np.ascontiguousarray(resize_nearest(bgr)[:, :, ::-1]), ""


def _video_faces(item: Item, max_faces: int) -> list[np.ndarray]:
    """Faces cut from a labelled video by the live pipeline's detector and crop."""
    from mesolive.train.video_faces import extract_faces

    return extract_faces(item.path, max_faces=max_faces)


def load_faces(items: Sequence[Item], *, max_faces_per_video: int = 60) -> FaceSet:
    """Decode every item; unreadable images are reported and skipped.

    Raises
    ------
    InputError
        When nothing usable remains.
    """
    images: list[np.ndarray] = []
    labels: list[int] = []
    groups: list[str] = []
    stills = [it for it in items if it.path.suffix.lower() not in VIDEO_EXTS]
    videos = [it for it in items if it.path.suffix.lower() in VIDEO_EXTS]
    bad = 0
    with ThreadPoolExecutor(max_workers=2) as pool:  # PIL decodes without the GIL
        for it, (img, err) in zip(stills, pool.map(_load_image, stills), strict=True):
            if img is None:
                bad += 1
                if bad <= 10:
                    log.warning("skipped %s", err)
                continue
            images.append(img)
            labels.append(it.label)
            groups.append(it.group)
    if bad > 10:
        log.warning("skipped %d unreadable images in all", bad)
    for it in videos:
        faces = _video_faces(it, max_faces_per_video)
        if not faces:
            log.warning("%s: no face found in the video; skipped", it.path)
            continue
        group = it.group if it.group != str(it.path) else f"video:{it.path}"
        for face in faces:
            images.append(face)
            labels.append(it.label)
            groups.append(group)
    if not images:
        raise InputError("no usable training faces in the given data")
    return FaceSet(np.stack(images), np.array(labels, np.int64), np.array(groups))


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
        if len(np.unique(labels[idx])) < 2:
            raise InputError(
                f"the {name} split holds one class only; give more videos of each class"
            )
    return train_idx, val_idx


__all__ = ["FaceSet", "Item", "check_balance", "collect", "load_faces", "split_by_group"]
