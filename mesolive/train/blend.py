"""Self-blended pseudo-fakes: a real face blended into itself.

The recipe of self-blended images (Shiohara & Yamasaki, CVPR 2022) and Face
X-ray (Li et al., CVPR 2020): take a real crop, alter a copy of it the way a
face-swap pipeline alters the swapped face (colour mismatch, the blur of a
low-resolution generator, a slight misalignment), and paste the copy back
through a soft mask over the inner face. The result carries the generic
traces of any blending-based forgery (a boundary, a texture and colour
mismatch) without any particular generator's fingerprint, so a network that
learns from both these and one dataset's real fakes is not pulled entirely
towards that dataset's forgeries. In particular the 2018 deepfakes the
authors' weights were trained on were made exactly this way: a 64–128 px
autoencoder face, upscaled and blended into the frame.

No landmarks are needed: training crops are centred on the face (the
DFDC crops and the authors' crop both are), so the mask is a randomly
deformed ellipse around the centre. The blend happens before
:func:`mesolive.train.augment.augment`, so flips, zoom and JPEG act on real
faces and pseudo-fakes alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class BlendConfig:
    """How pseudo-fakes are made; sizes are shares of the crop side."""

    centre_jitter: float = 0.04
    axes_x: tuple[float, float] = (0.26, 0.38)  # half-width of the ellipse
    axes_y: tuple[float, float] = (0.32, 0.46)  # half-height
    centre_y: float = 0.55  # the inner face sits a little below the crop centre
    wobble: float = 0.06  # radial deformation of the ellipse, share of its radius
    edge_sigma: tuple[float, float] = (0.01, 0.05)  # mask feathering
    opacity: tuple[float, ...] = (0.5, 0.75, 1.0, 1.0, 1.0)  # chosen uniformly
    shift: float = 0.02  # misalignment of the pasted copy
    scale: tuple[float, float] = (0.96, 1.04)
    colour: float = 0.04  # per-channel shift, share of 255
    low_res: tuple[float, float] = (0.25, 0.6)  # generator resolution, share of the side
    # The copy gets one of low resolution, blur or sharpening, drawn in that order:
    # low resolution with p_low_res; otherwise blur, so that p_blur is its share of
    # all copies (needs p_low_res + p_blur <= 1); otherwise sharpening with
    # p_sharpen of what is left (0.2 of the remaining 0.2: 4 % of all copies).
    p_low_res: float = 0.5
    p_blur: float = 0.3
    p_sharpen: float = 0.2


def blend_mask(h: int, w: int, rng: np.random.Generator, cfg: BlendConfig) -> np.ndarray:
    """(h, w) float32 in [0, 1]: a feathered, randomly deformed ellipse over the inner face."""
    cx = w * (0.5 + rng.uniform(-cfg.centre_jitter, cfg.centre_jitter))
    cy = h * (cfg.centre_y + rng.uniform(-cfg.centre_jitter, cfg.centre_jitter))
    ax, ay = w * rng.uniform(*cfg.axes_x), h * rng.uniform(*cfg.axes_y)
    t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    radius = np.ones_like(t)
    for k in (2, 3, 4, 5):  # low-frequency wobble: jaws, cheeks, forehead differ per swap
        phase = rng.uniform(0, 2 * np.pi)
        radius += rng.uniform(-cfg.wobble, cfg.wobble) / k * np.cos(k * t + phase)
    pts = np.stack([cx + ax * radius * np.cos(t), cy + ay * radius * np.sin(t)], axis=1)
    mask = np.zeros((h, w), np.float32)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1.0)
    sigma = max(0.5, rng.uniform(*cfg.edge_sigma) * w)
    mask = np.clip(cv2.GaussianBlur(mask, (0, 0), sigma), 0.0, 1.0)
    return mask * float(rng.choice(cfg.opacity))


def _altered_copy(img: np.ndarray, rng: np.random.Generator, cfg: BlendConfig) -> np.ndarray:
    """The face as a swap pipeline would render it: colour, resolution, alignment off."""
    h, w = img.shape[:2]
    out = img.astype(np.float32)
    out += rng.uniform(-cfg.colour, cfg.colour, 3).astype(np.float32) * 255
    out = (out - 127.5) * rng.uniform(0.92, 1.08) + 127.5
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < cfg.p_low_res:
        side = max(16, round(w * rng.uniform(*cfg.low_res)))
        small = cv2.resize(out, (side, side), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    elif rng.random() < cfg.p_blur / (1 - cfg.p_low_res):
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.6, 1.6))
    elif rng.random() < cfg.p_sharpen:
        soft = cv2.GaussianBlur(out, (0, 0), 1.0)
        out = cv2.addWeighted(out, 1.6, soft, -0.6, 0)
    s = rng.uniform(*cfg.scale)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, s)
    m[:, 2] += rng.uniform(-cfg.shift, cfg.shift, 2) * (w, h)
    return cv2.warpAffine(out, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def self_blend(
    img: np.ndarray, rng: np.random.Generator, cfg: BlendConfig | None = None
) -> np.ndarray:
    """A pseudo-fake made from one (H, W, 3) uint8 real crop; same shape and dtype."""
    cfg = cfg or BlendConfig()
    h, w = img.shape[:2]
    src = _altered_copy(img, rng, cfg)
    mask = blend_mask(h, w, rng, cfg)[:, :, None]
    out = src.astype(np.float32) * mask + img.astype(np.float32) * (1 - mask)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


__all__ = ["BlendConfig", "blend_mask", "self_blend"]
