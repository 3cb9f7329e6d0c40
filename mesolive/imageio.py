"""The one image decoder of mesolive: every verb, the app's sources and training read through it.

:func:`read_still` decodes any still (a photo, a saved frame) for ``scan`` and
the app; :func:`read_image` decodes a face crop for ``classify``,
``evaluate``, training and INT8 calibration, and also refuses crops too small
to score. Both decode with PIL, as the authors' Keras loader did, so an
ordinary 8-bit JPEG or PNG gives the authors' pixels exactly. Against hostile
or odd files:

- only regular files are opened: a FIFO named ``x.jpg`` would block forever;
- the header is read first and an image over :func:`max_pixels` is refused
  before a pixel is decoded (a 16 KB JPEG may claim 30000×30000, 2.7 GB);
- the EXIF orientation is applied;
- every pixel format becomes 8 bits: 16-bit samples keep their high byte,
  32-bit integers are stretched over their own range, floats in 0..1 are
  scaled by 255 and other floats stretched over their own range; alpha is
  dropped, keeping the colour under it (as PIL's ``convert("RGB")`` in the
  authors' loader and OpenCV's ``IMREAD_COLOR`` both did);
- a truncated file is an error, never a half-grey image, and PIL's warnings
  go to the debug log; every failure is one :class:`InputError` line naming
  the file.
"""

from __future__ import annotations

import logging
import os
import stat
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mesolive.classify.preprocess import MIN_SIDE
from mesolive.env import env_int
from mesolive.errors import InputError

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTS = frozenset(
    ".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .ts .mts .m2ts .flv .wmv .ogv .3gp .gif".split()
)
"""What a folder's files are taken for (a scanned folder, a labelled data set). A file
named on its own is read whatever its name: an image by its extension, else as a video."""

PIL_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "DIB", "GIF", "PPM", "JPEG2000")
"""The PIL plugins tried, whatever the file's name: never EPS (PIL runs Ghostscript
on it) nor the rarely used parsers, each one more surface for a hostile file."""

MAX_PIXELS_ENV = "MESOLIVE_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 50_000_000
"""Room for an 8K frame (7680×4320 is 33.2 MP); decoding a 49 MP JPEG peaks near 0.5 GB."""

#: What PIL raises for a malformed file besides its documented OSError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError)


def max_pixels() -> int:
    """The largest image (width × height) decoded: ``MESOLIVE_MAX_PIXELS`` or the default."""
    return env_int(MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS, minimum=1)


def check_size(path: Path, w: int, h: int, *, what: str = "image", limit: int = 0) -> None:
    """Refuse a ``w``×``h`` image or video frame over ``limit`` (default :func:`max_pixels`).

    Raises
    ------
    InputError
        One line with the size, the limit and how to raise it.
    """
    limit = limit or max_pixels()
    if w * h > limit:
        raise InputError(
            f"{path}: {what} is {w}x{h} px, over the limit of {limit} px "
            f"(set {MAX_PIXELS_ENV} to raise it)"
        )


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as an image file, found without opening it; None if it can."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file or folder"
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the name
        return f"cannot read ({getattr(e, 'strerror', None) or e})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        kind = "a folder"
    elif stat.S_ISFIFO(mode):
        kind = "a named pipe (FIFO)"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    else:
        kind = "a special file"
    return f"is {kind}, not a regular file"


def list_images(folder: Path) -> tuple[list[Path], dict[Path, str]]:
    """The image files under ``folder``, recursively and sorted by path.

    Returns the files, and why each entry with an image name that is no
    regular file (a FIFO, a device, a socket, a dangling link) is left out
    unopened (:func:`file_problem`).
    """
    files: list[Path] = []
    unusable: dict[Path, str] = {}
    for f in sorted(folder.rglob("*")):
        if f.suffix.lower() not in IMAGE_EXTS or f.is_dir():
            continue
        problem = file_problem(f)
        if problem is None:
            files.append(f)
        else:
            unusable[f] = problem
    return files, unusable


def _is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # a name too long, a NUL byte: file_problem says which
        return False


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[InputError]]:
    """Files as given plus the images inside folders (:func:`list_images`).

    Returns the files and one error per path that is missing, not a regular
    file or an empty folder, and per image-named entry of a folder that is not
    a regular file (skipped).
    """
    files: list[Path] = []
    errors: list[InputError] = []
    for p in map(Path, paths):
        if _is_folder(p):
            found, unusable = list_images(p)
            if not found and not unusable:
                errors.append(InputError(f"{p}: folder holds no images"))
            files.extend(found)
            errors.extend(InputError(f"{f}: {why}; skipped") for f, why in unusable.items())
        elif (problem := file_problem(p)) is None:
            files.append(p)
        else:
            errors.append(InputError(f"{p}: {problem}"))
    return files, errors


def read_still(path: str | Path) -> np.ndarray:
    """Decode any still image file (module docstring) to (H, W, 3) uint8 BGR, C-contiguous.

    Raises
    ------
    InputError
        Not a regular file, not an image, truncated or corrupt, over the pixel
        limit, or ``MESOLIVE_MAX_PIXELS`` is not a number.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    problem = file_problem(path)
    if problem is not None:
        raise InputError(f"{path}: {problem}")
    limit = max_pixels()
    # The size check below, made on the header alone, replaces PIL's own (a
    # warning above its limit, an error without the size above twice that).
    Image.MAX_IMAGE_PIXELS = None
    try:
        fp = open(path, "rb")  # closed by the with below
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from e
    with fp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with Image.open(fp, formats=PIL_FORMATS) as im:
                check_size(path, *im.size, limit=limit)
                ImageOps.exif_transpose(im, in_place=True)
                bgr = _to_bgr(path, im)
        except UnidentifiedImageError as e:
            raise InputError(
                f"{path}: not an image file, or of a kind mesolive does not read"
            ) from e
        except _DECODE_ERRORS as e:
            reason = " ".join(str(e).split()) or type(e).__name__
            raise InputError(f"{path}: unreadable or truncated image ({reason})") from e
        finally:
            for warning in caught:
                log.debug("%s: %s", path, warning.message)
    return bgr


def read_image(path: str | Path) -> np.ndarray:
    """Decode a face-crop file (:func:`read_still`), returned BGR uint8.

    Raises
    ------
    InputError
        As :func:`read_still`, or smaller than 16 px on a side.
    """
    bgr = read_still(path)
    h, w = bgr.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InputError(f"{path}: image is {w}x{h} px, smaller than {MIN_SIDE} px")
    return bgr


def _to_bgr(path: Path, im: Image.Image) -> np.ndarray:
    """A PIL image of any mode as (H, W, 3) uint8 BGR, C-contiguous (module docstring)."""
    if im.mode in ("I", "F") or im.mode.startswith("I;"):
        gray = _gray_to_u8(np.asarray(im))
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    try:
        rgb = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))  # no needless copy
    except ValueError as e:
        raise InputError(f"{path}: unsupported pixel format {im.mode}") from e
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _gray_to_u8(a: np.ndarray) -> np.ndarray:
    """16-bit: the high byte; values all in 0..1: ×255; others: stretched over their own range."""
    if a.dtype.kind == "u" and a.dtype.itemsize == 2:
        return (a >> 8).astype(np.uint8)
    a = a.astype(np.float64)
    finite = np.isfinite(a)
    a = np.where(finite, a, 0.0)  # NaN and ±inf count as 0
    lo, hi = float(a.min()), float(a.max())
    if 0.0 <= lo and hi <= 1.0:
        a = a * 255.0
    elif hi > lo:
        a = (a - lo) * (255.0 / (hi - lo))
    else:
        a = np.zeros_like(a)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)
