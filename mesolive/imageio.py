"""Reading face-crop images from disk, with one-line errors for bad files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mesolive.classify.preprocess import MIN_SIDE
from mesolive.errors import InputError

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[InputError]]:
    """Files as given plus the images inside folders (recursively, sorted).

    Returns the files and one error per path that is missing or an empty folder.
    """
    files: list[Path] = []
    errors: list[InputError] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS
            )
            if not found:
                errors.append(InputError(f"{p}: folder holds no images"))
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            errors.append(InputError(f"{p}: no such file or folder"))
    return files, errors


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file as the authors' loader did (PIL), returned BGR uint8.

    Raises
    ------
    InputError
        Not an image, truncated, or smaller than 16 px on a side.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except UnidentifiedImageError as e:
        raise InputError(f"{path}: not an image file") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{path}: unreadable or truncated image ({e})") from e
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InputError(f"{path}: image is {w}x{h} px, smaller than {MIN_SIDE} px")
    return np.ascontiguousarray(rgb[:, :, ::-1])
