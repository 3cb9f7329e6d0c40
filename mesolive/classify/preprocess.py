"""The one preprocessing contract between a face crop and MesoNet.

The authors trained through Keras' ``ImageDataGenerator.flow_from_directory``,
which loads with PIL, resizes with PIL's NEAREST filter to 256×256 and scales
by 1/255. OpenCV's ``INTER_NEAREST_EXACT`` picks the same source pixels as
PIL's NEAREST (plain ``INTER_NEAREST`` rounds differently and does not), and
other interpolations measurably lower the published weights' accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mesolive.models.arch import INPUT_SIZE

MIN_SIDE = 16
"""Crops smaller than this carry no mesoscopic texture worth scoring."""


def resize_nearest(image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Resize an (H, W, 3) uint8 image to (size, size, 3) exactly as PIL NEAREST."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_NEAREST_EXACT)


def to_batch(crops_bgr: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """OpenCV BGR uint8 face crops → the network input.

    Parameters
    ----------
    crops_bgr
        Crops of any size, each (H, W, 3) uint8 in BGR order (as OpenCV reads),
        or one (N, H, W, 3) array.

    Returns
    -------
    np.ndarray
        (N, 3, 256, 256) float32 NCHW, RGB, values in [0, 1].
    """
    n = len(crops_bgr)
    out = np.empty((n, 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i, crop in enumerate(crops_bgr):
        if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
            raise ValueError(
                f"face crop {i}: expected (H, W, 3) uint8 BGR, got {crop.shape} {crop.dtype}"
            )
        img = resize_nearest(crop)
        # BGR -> RGB and HWC -> CHW in one strided copy, then scale.
        np.multiply(img[:, :, ::-1].transpose(2, 0, 1), np.float32(1.0 / 255.0), out=out[i])
    return out


def fake_score(p_real: np.ndarray) -> np.ndarray:
    """The network outputs P(real) (the authors' ``df``=0, ``real``=1); fake = 1 - it."""
    return (1.0 - np.asarray(p_real, dtype=np.float32)).reshape(-1)
