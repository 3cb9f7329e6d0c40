"""The preprocessing contract: how one model sees a face, used by every path.

Each model declares a :class:`Preprocess` in the manifest (or its card): the
crop rule and its scale, the output size, the resize interpolation, the
colour order and the value range. Inference (``scan``, the app), the verbs
that take face crops (``classify``/``evaluate``), training, INT8 calibration
and engine verification all cut and batch faces through that object, so a
model is never judged on faces framed unlike the ones it learnt from.

One contract, two batches, one rule: :meth:`Preprocess.cut` and
:meth:`Preprocess.pixels` frame and resize the crops and keep them uint8 in
OpenCV's BGR order, which the inference graphs read (they apply the colour
order and value range themselves, :meth:`Preprocess.pixel_map` folded into
their first convolutions); :meth:`Preprocess.to_batch` maps those same
pixels through the same map to the float NCHW batch the training path
feeds torch.

The authors' contract (:data:`AUTHORS`): the authors trained through Keras'
``ImageDataGenerator.flow_from_directory``, which loads with PIL, resizes
with PIL's NEAREST filter to 256×256 and scales by 1/255. OpenCV's
``INTER_NEAREST_EXACT`` picks the same source pixels as PIL's NEAREST
(plain ``INTER_NEAREST`` rounds differently and does not), and other
interpolations measurably lower the published weights' accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np

from mesolive.errors import ModelError
from mesolive.models.arch import INPUT_SIZE

MIN_SIDE = 16
"""Crops smaller than this carry no mesoscopic texture worth scoring."""

CROP_RULES = ("authors",)
"""Known crop rules: ``authors`` is :func:`mesolive.align.crop.crop_transform`."""
SCALES = (0.3, 3.0)
"""The crop scales a contract may hold (against the authors' square), both included."""

PRECUT_MODES = ("as-is", "recut")
"""How an image that is already a face crop is read: resized whole, or the face
found in it and cut again by the model's rule (padding where the crop lacks
context), so that crops from another pipeline are framed as the model learnt."""

# warp (crop from a frame) and plain resize flags per interpolation name
_INTERPOLATION = {
    "nearest": (cv2.INTER_NEAREST, cv2.INTER_NEAREST_EXACT),
    "linear": (cv2.INTER_LINEAR, cv2.INTER_LINEAR),
}


@dataclass(frozen=True)
class Preprocess:
    """How a model sees a face: from a frame and keypoints to its input tensor.

    Attributes
    ----------
    crop
        Crop rule: ``authors`` (nose-centred, eye-levelled square of side
        ``1.3 × 2.2 × max(eye distance, eyes-to-mouth)``).
    scale
        Multiplies the rule's side: 1.0 is the authors' square; ``1/1.3``
        drops their 1.3 margin (the 2.2 square alone).
    size
        Side of the network input in pixels.
    interpolation
        ``nearest`` (PIL's NEAREST, the authors') or ``linear``.
    colour
        Channel order the network reads: ``rgb`` or ``bgr``.
    value_range
        (low, high): uint8 0 maps to low and 255 to high.
    precut
        How an image that is already a face crop is read (:data:`PRECUT_MODES`).
    """

    crop: str = "authors"
    scale: float = 1.0
    size: int = INPUT_SIZE
    interpolation: str = "nearest"
    colour: str = "rgb"
    value_range: tuple[float, float] = (0.0, 1.0)
    precut: str = "as-is"

    def __post_init__(self) -> None:
        object.__setattr__(self, "value_range", tuple(float(v) for v in self.value_range))
        problems = {
            "crop": self.crop not in CROP_RULES,
            "scale": not SCALES[0] <= float(self.scale) <= SCALES[1],
            "size": self.size != INPUT_SIZE,
            "interpolation": self.interpolation not in _INTERPOLATION,
            "colour": self.colour not in ("rgb", "bgr"),
            "value_range": len(self.value_range) != 2
            or not self.value_range[0] < self.value_range[1],
            "precut": self.precut not in PRECUT_MODES,
        }
        bad = [k for k, v in problems.items() if v]
        if bad:
            raise ModelError(
                f"preprocessing field {bad[0]!r}: cannot honour {getattr(self, bad[0])!r}"
            )

    # -- (de)serialisation ----------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Preprocess:
        """Read a manifest/card block; every field must be present.

        Raises
        ------
        ModelError
            A field is missing, unknown or has a value no path can honour;
            the message names the model and the field.
        """
        names = [f.name for f in fields(cls)]
        for name in names:
            if name not in data:
                raise ModelError(f"{where}: preprocessing field {name!r} is missing")
        extra = sorted(set(data) - set(names))
        if extra:
            raise ModelError(f"{where}: unknown preprocessing field {extra[0]!r}")
        try:
            return cls(**{k: data[k] for k in names})
        except ModelError as e:
            raise ModelError(f"{where}: {e}") from e
        except (TypeError, ValueError) as e:
            raise ModelError(f"{where}: bad preprocessing block ({e})") from e

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["value_range"] = list(self.value_range)
        return out

    # -- cutting ----------------------------------------------------------------------
    def cut(self, image: np.ndarray, kps: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Every face of a frame cut by this rule: (n, 5, 2) keypoints → (n, S, S, 3).

        ``image`` is an (H, W, 3) uint8 frame in either channel order; the
        crops keep it. ``out`` is where to write them (an (n, S, S, 3) uint8
        array such as a runner's input buffer), a new array when None.
        """
        from mesolive.align.crop import crop_faces

        return crop_faces(
            image,
            kps,
            size=self.size,
            scale=self.scale,
            interpolation=_INTERPOLATION[self.interpolation][0],
            out=out,
        )

    def resize(self, crop: np.ndarray) -> np.ndarray:
        """An (H, W, 3) uint8 crop resized to (S, S, 3) by this interpolation."""
        if crop.shape[0] == self.size and crop.shape[1] == self.size:
            return crop
        flag = _INTERPOLATION[self.interpolation][1]
        return cv2.resize(crop, (self.size, self.size), interpolation=flag)

    # -- batching ---------------------------------------------------------------------
    def pixel_map(self) -> tuple[tuple[int, int, int], float, float]:
        """How the network input follows from the pixels of :meth:`pixels`.

        Returns
        -------
        tuple
            ``(channels, gain, low)``: network channel c holds
            ``low + gain × pixel channel channels[c]``, the pixels being
            uint8 in BGR order. :meth:`to_batch` computes it; the inference
            graphs fold it into their weights (:mod:`mesolive.models.onnx_graph`).
        """
        lo, hi = self.value_range
        return (2, 1, 0) if self.colour == "rgb" else (0, 1, 2), (hi - lo) / 255.0, lo

    def pixels(
        self,
        crops: Sequence[np.ndarray] | np.ndarray,
        order: str = "bgr",
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Face crops → the inference graphs' input: resized, in BGR order, still uint8.

        Parameters
        ----------
        crops
            Crops of any size, each (H, W, 3) uint8, or one (N, H, W, 3) array.
        order
            Channel order of ``crops``: ``bgr`` (as OpenCV reads) or ``rgb``.
        out
            Where to write them: an (N, S, S, 3) uint8 array, such as a
            runner's input buffer (:meth:`mesolive.backends.base.Runner.input_buffer`);
            a new array when None.

        Returns
        -------
        np.ndarray
            (N, S, S, 3) uint8 BGR, ``out`` where given.
        """
        if order not in ("rgb", "bgr"):
            raise ValueError(f"order: expected 'rgb' or 'bgr', got {order!r}")
        from mesolive.align.crop import crops_array

        out = crops_array(out, len(crops), self.size)
        for i, crop in enumerate(crops):
            if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
                raise ValueError(
                    f"face crop {i}: expected (H, W, 3) uint8, got {crop.shape} {crop.dtype}"
                )
            img = self.resize(crop)
            out[i] = img if order == "bgr" else img[:, :, ::-1]
        return out

    def to_batch(self, crops: Sequence[np.ndarray] | np.ndarray, order: str = "bgr") -> np.ndarray:
        """Face crops → the network input as float: what the training path feeds torch.

        The crops of :meth:`pixels`, mapped by :meth:`pixel_map` (the same
        arithmetic the inference graphs fold into their first convolutions).

        Parameters
        ----------
        crops
            Crops of any size, each (H, W, 3) uint8, or one (N, H, W, 3) array.
        order
            Channel order of ``crops``: ``bgr`` (as OpenCV reads) or ``rgb``.

        Returns
        -------
        np.ndarray
            (N, 3, S, S) float32 NCHW in the model's colour order and range.
        """
        pixels = self.pixels(crops, order)
        channels, gain, lo = self.pixel_map()
        out = np.empty((len(pixels), 3, self.size, self.size), dtype=np.float32)
        for c, src in enumerate(channels):
            np.multiply(pixels[..., src], np.float32(gain), out=out[:, c])
        if lo:
            out += np.float32(lo)
        return out


AUTHORS = Preprocess()
"""The authors' contract, exactly (their four published models)."""


def resize_nearest(image: np.ndarray) -> np.ndarray:
    """Resize an (H, W, 3) uint8 image to 256×256 exactly as PIL NEAREST (:data:`AUTHORS`)."""
    return AUTHORS.resize(image)


def to_batch(crops_bgr: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """OpenCV BGR uint8 face crops → the authors' network input (:data:`AUTHORS`).

    Returns
    -------
    np.ndarray
        (N, 3, 256, 256) float32 NCHW, RGB, values in [0, 1].
    """
    return AUTHORS.to_batch(crops_bgr, "bgr")


def fake_score(p_real: np.ndarray) -> np.ndarray:
    """The network outputs P(real) (the authors' ``df``=0, ``real``=1); fake = 1 - it."""
    return (1.0 - np.asarray(p_real, dtype=np.float32)).reshape(-1)
