"""How large a face is in the frame, from SCRFD's five keypoints (numpy only).

The authors' crop (:mod:`mesolive.align.crop`) is built from this size, and
the pipeline uses it to decide which faces are large enough to judge; it lives
apart from the crop so the pipeline can read it without loading OpenCV.
"""

from __future__ import annotations

import numpy as np

MIN_FACE_SPAN_PX = 32.0
"""Faces whose span (:func:`face_spans`) is below this many frame pixels are tracked, not judged.

The default model's crop of such a face covers fewer than ~70 frame pixels
(1.3 × 2.2 × 32 × its contract's scale 0.77), and on held-aside whole videos
shrunk that far no fake was caught (docs/training.md, scripts/far_faces.py):
a "real" there would be false assurance.
"""


def face_spans(kps: np.ndarray) -> np.ndarray:
    """The authors' face size of each face: (n, 5, 2) keypoints → (n,) float64 spans.

    A span is the larger of the eye-to-eye distance and the distance from the
    eyes' midpoint to the mouth corners' midpoint, in frame pixels (SCRFD's
    keypoint order); the authors' square has side ``1.3 × 2.2 × span``.
    """
    pts = np.asarray(kps, dtype=np.float64).reshape(-1, 5, 2)
    eyes = (pts[:, 0] + pts[:, 1]) / 2.0
    mouth = (pts[:, 3] + pts[:, 4]) / 2.0
    eye_to_eye = np.hypot(*(pts[:, 1] - pts[:, 0]).T)
    eyes_to_mouth = np.hypot(*(mouth - eyes).T)
    return np.maximum(eye_to_eye, eyes_to_mouth)
