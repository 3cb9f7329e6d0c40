"""The contract every face detector keeps."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from mesolive.types import FaceDetections


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces and their five keypoints in one BGR frame.

    Like a runner, a detector is created, used and closed in one thread.

    Attributes
    ----------
    name
        What runs, for logs, e.g. ``"scrfd det_500m.onnx 320x320 onnxruntime-cpu"``.
    input_size
        ``(width, height)`` of the network input actually used.
    """

    name: str
    input_size: tuple[int, int]

    def detect(self, image: np.ndarray) -> FaceDetections:
        """Faces in ``image``.

        Parameters
        ----------
        image
            (H, W, 3) uint8 BGR frame.

        Returns
        -------
        FaceDetections
            Boxes and keypoints in ``image`` pixels, best score first.
        """
        ...

    def close(self) -> None:
        """Free the session. Idempotent."""
        ...
