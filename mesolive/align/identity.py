"""Faces framed for telling people apart (not for judging forgery).

ArcFace-style recognisers, insightface's included, read a 112×112 face whose
five keypoints are moved by a similarity transform onto one fixed template;
:data:`ARCFACE_112` is that template (eyes, nose tip, mouth corners, in
pixels of the 112×112 output), as published with ArcFace (Deng et al., 2019).
The forgery crop (:mod:`mesolive.align.crop`) is a different, wider frame.
"""

from __future__ import annotations

import cv2
import numpy as np

ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    np.float32,
)


def identity_crops(image: np.ndarray, kps: np.ndarray, size: int = 112) -> np.ndarray:
    """Faces of one frame aligned to the template: (n, 5, 2) keypoints → (n, size, size, 3).

    ``image`` is an (H, W, 3) uint8 frame; the crops keep its channel order.
    Pixels outside the frame repeat its border.
    """
    target = ARCFACE_112 * np.float32(size / 112.0)
    out = np.empty((len(kps), size, size, 3), np.uint8)
    for i, points in enumerate(np.asarray(kps, np.float32)):
        m, _ = cv2.estimateAffinePartial2D(points, target, method=cv2.LMEDS)
        if m is None:  # degenerate keypoints (all on one spot): a plain resize of the frame
            m = np.array([[size / image.shape[1], 0, 0], [0, size / image.shape[0], 0]])
        cv2.warpAffine(
            image,
            m,
            (size, size),
            dst=out[i],
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
    return out
