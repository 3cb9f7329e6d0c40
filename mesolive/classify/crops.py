"""Images that are already face crops, framed as a model expects them.

``classify``, ``evaluate``, INT8 calibration and engine verification read
face crops cut by someone else (the authors' test images, DFDC's tight
224-px crops, a user's folder). A model whose contract says
``precut: as-is`` (the authors' four) reads such a crop whole, exactly as the
authors' loader did. A model whose contract says ``recut`` was trained on
faces cut by the product itself, so the face is found in the crop and cut
again by the model's rule, padded by reflection where the crop lacks context;
a crop in which no face is found is read whole, and :attr:`CropReader.unframed`
names those.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from mesolive.classify.preprocess import Preprocess

log = logging.getLogger(__name__)


class CropReader:
    """Reads face-crop images for one model's contract (module docstring).

    The detector is loaded on the first image that needs it, in the thread
    that reads (never for an ``as-is`` contract).
    """

    def __init__(
        self,
        contract: Preprocess,
        *,
        detector: str | os.PathLike[str] | None = None,
        model_dir: str | os.PathLike[str] | None = None,
        threads: int | None = None,
    ) -> None:
        self.contract = contract
        self._detector_arg = detector
        self._model_dir = model_dir
        self._threads = threads  # the detector's CPU threads (``--threads``)
        self._detector = None
        self.unframed: set[str] = set()  # the images in which no face was found, read whole

    def frame(self, bgr: np.ndarray, name: str = "") -> np.ndarray:
        """One crop as the model reads it: (H, W, 3) uint8 BGR in, BGR out."""
        if self.contract.precut == "as-is":
            return bgr
        crop = self.largest(bgr)
        if crop is None:
            self.unframed.add(name)
            log.warning("%s: no face found in the crop; read whole", name or "image")
            return bgr
        return crop

    def largest(self, bgr: np.ndarray) -> np.ndarray | None:
        """The largest face of an (H, W, 3) uint8 BGR image cut by the contract.

        Returns an (S, S, 3) uint8 BGR crop, or None where no face is found.
        """
        if self._detector is None:
            from mesolive.detect.scrfd import ScrfdDetector, resolve_detector

            self._detector = ScrfdDetector(
                resolve_detector(self._detector_arg, self._model_dir), threads=self._threads
            )
        found = self._detector.detect(bgr)
        if not len(found):
            return None
        xyxy = found.xyxy
        i = int(np.argmax((xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])))
        return self.contract.cut(bgr, found.kps[i : i + 1])[0]

    def read(self, path: str | Path) -> np.ndarray:
        """Decode and frame one file (raises InputError for a bad file)."""
        from mesolive.imageio import read_image

        return self.frame(read_image(path), str(path))

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def __enter__(self) -> CropReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
