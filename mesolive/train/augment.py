"""Training-time augmentation on uint8 BGR face crops (OpenCV, GIL-free).

The paper's set (zoom, rotation, horizontal flip, brightness and contrast,
hue) plus what calls and uploads do to a face: down- and re-scaling (a
low-resolution webcam or a resized stream), blur (focus, motion), sensor
noise, exposure (gamma) and JPEG re-compression, whose 8×8 DCT quantisation
is the block coding H.264 applies to every frame. Each degradation is off in
the paper's presets and on in ``call`` and ``sizes``. ``sizes`` rescales most
faces: a face far from the camera is cut from few pixels and blown up to the
network's input, and a network that met fakes at low resolution more often
than reals learns to call any low-resolution face fake (measured on the
held-aside faces, docs/training.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    flip: float = 0.5  # probability of a horizontal flip
    affine: float = 0.7  # probability of a zoom/rotation/shift
    zoom: tuple[float, float] = (0.9, 1.15)
    rotation: float = 10.0  # degrees, +-
    shift: float = 0.04  # share of the side, +-
    brightness: float = 0.12  # share of 255, +-
    contrast: tuple[float, float] = (0.8, 1.2)
    hue: float = 6.0  # degrees, +-
    saturation: tuple[float, float] = (0.85, 1.15)
    jpeg: float = 0.5  # probability of a JPEG re-compression
    jpeg_quality: tuple[int, int] = (35, 95)
    rescale: float = 0.0  # probability of a down- and up-scaling
    rescale_factor: tuple[float, float] = (0.35, 0.9)
    blur: float = 0.0  # probability of a Gaussian blur
    blur_sigma: tuple[float, float] = (0.3, 1.4)
    noise: float = 0.0  # probability of Gaussian sensor noise
    noise_sigma: tuple[float, float] = (1.0, 6.0)  # grey levels
    gamma: float = 0.0  # probability of an exposure (gamma) change
    gamma_range: tuple[float, float] = (0.7, 1.4)

    def describe(self) -> dict[str, object]:
        return dict(self.__dict__)


def augment(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Return an augmented copy of an (H, W, 3) uint8 BGR image of the same shape."""
    h, w = img.shape[:2]
    out = img
    if rng.random() < cfg.affine:
        angle = rng.uniform(-cfg.rotation, cfg.rotation)
        scale = rng.uniform(*cfg.zoom)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        m[:, 2] += rng.uniform(-cfg.shift, cfg.shift, 2) * (w, h)
        out = cv2.warpAffine(out, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if rng.random() < cfg.flip:
        out = out[:, ::-1]
    if cfg.hue or cfg.saturation != (1.0, 1.0):
        hsv = cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_BGR2HSV)
        hue = np.int16(round(rng.uniform(-cfg.hue, cfg.hue) / 2))  # OpenCV hue is 0..179
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + hue) % 180).astype(np.uint8)
        sat = rng.uniform(*cfg.saturation)
        hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 255).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    out = _degrade(np.ascontiguousarray(out), rng, cfg)
    alpha = rng.uniform(*cfg.contrast)
    beta = rng.uniform(-cfg.brightness, cfg.brightness) * 255 + (1 - alpha) * 127.5
    out = cv2.convertScaleAbs(np.ascontiguousarray(out), alpha=alpha, beta=beta)
    if rng.random() < cfg.jpeg:
        q = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(out)


def _degrade(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """A call's or an upload's damage: scaling, blur, noise and exposure (each optional)."""
    h, w = img.shape[:2]
    out = img
    if rng.random() < cfg.rescale:
        f = rng.uniform(*cfg.rescale_factor)
        small = cv2.resize(out, (max(8, round(w * f)), max(8, round(h * f))), cv2.INTER_AREA)
        up = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_NEAREST)[int(rng.integers(3))]
        out = cv2.resize(small, (w, h), interpolation=up)
    if rng.random() < cfg.blur:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(*cfg.blur_sigma))
    if rng.random() < cfg.gamma:
        g = rng.uniform(*cfg.gamma_range)
        lut = np.clip(255.0 * (np.arange(256) / 255.0) ** g, 0, 255).astype(np.uint8)
        out = cv2.LUT(out, lut)
    if rng.random() < cfg.noise:
        sigma = rng.uniform(*cfg.noise_sigma)
        noisy = out.astype(np.float32) + rng.normal(0.0, sigma, out.shape).astype(np.float32)
        out = np.clip(noisy, 0, 255).astype(np.uint8)
    return out


_LIGHT = AugmentConfig(
    affine=0.4,
    zoom=(0.95, 1.08),
    rotation=5.0,
    shift=0.02,
    brightness=0.06,
    contrast=(0.9, 1.1),
    hue=3.0,
    saturation=(0.95, 1.05),
)

PRESETS: dict[str, AugmentConfig] = {
    # the paper's families at moderate strength, plus JPEG re-compression
    "full": AugmentConfig(),
    # geometry and colour milder; flips and JPEG as in "full"
    "light": _LIGHT,
    # "light" plus zooming out (reflect-padded, as the authors' crop pads past the
    # frame edge): DFDC-style tight crops also look like the live pipeline's wider crop
    "wide": replace(_LIGHT, affine=0.8, zoom=(0.7, 1.08), shift=0.03),
    # "light" plus a call's and an upload's damage (module docstring)
    "call": replace(_LIGHT, rescale=0.3, blur=0.2, noise=0.2, gamma=0.2),
    # "call" with most faces seen at another size (a quarter to all of the crop's
    # side), as faces far from the camera are cut from few pixels: real and fake
    # alike, so that a face's resolution stops telling one from the other
    "sizes": replace(
        _LIGHT, rescale=0.7, rescale_factor=(0.25, 1.0), blur=0.2, noise=0.2, gamma=0.2
    ),
    # the plain baseline: horizontal flips only
    "flip": AugmentConfig(
        affine=0.0,
        brightness=0.0,
        contrast=(1.0, 1.0),
        hue=0.0,
        saturation=(1.0, 1.0),
        jpeg=0.0,
    ),
}
