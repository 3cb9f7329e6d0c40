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

Two styles (``--blend-style``):

- ``ellipse`` (:func:`self_blend`): no landmarks are needed, since training
  crops are centred on the face (the DFDC crops and the authors' crop both
  are), so the mask is a randomly deformed ellipse around the centre.
- ``inswap`` (:func:`swap_paste`): the paste of a live face-swapper built on
  InsightFace's ``inswapper_128`` (roop and the webcam tools that followed
  it). Such a tool aligns the face to the 5-point ArcFace template at
  128×128, replaces it there, and pastes the whole aligned square back
  through a mask eroded by a tenth of its side and blurred by a twentieth.
  In the product's own crop that square is larger than the crop: everything
  but a strip below the chin is re-rendered at 128 px, and the only seam
  runs across the chin or neck, unlike the ellipse's seam around the inner
  face. The crop is already levelled and scaled by the same five points, so
  the square's place in it follows from the crop's contract alone.

The blend happens before :func:`mesolive.train.augment.augment`, so flips,
zoom and JPEG act on real faces and pseudo-fakes alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from mesolive.align.crop import K_AUTHORS, L_FACTOR


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


# The ArcFace 5-point template (112 units a side) in the units of the authors' face
# span (mesolive.align.spans: the eyes' midpoint to the mouth corners' midpoint is
# 40.7 units there): the aligned square is 2.75 spans a side, and its centre lies
# 0.39 span above the nose, which the product's crop centres.
ARCFACE_SIDE_SPANS = 112.0 / 40.69
ARCFACE_CENTRE_ABOVE_NOSE_SPANS = 15.74 / 40.69
BLEND_STYLES = ("ellipse", "inswap")


@dataclass(frozen=True)
class SwapPasteConfig:
    """How an inswapper-style paste is imitated; the tool's own numbers where it has them."""

    generator_px: int = 128  # inswapper_128 renders the aligned face at 128×128
    # a face far from the camera holds fewer frame pixels than the generator's grid, so
    # the re-rendering costs it less detail: the grid is drawn up to this factor larger
    grid_factor: tuple[float, float] = (1.0, 1.6)
    p_native_grid: float = 0.6  # share of pastes at the generator's own 128 px
    size: tuple[float, float] = (0.9, 1.1)  # faces differ from the template
    centre_jitter: float = 0.04  # share of the square's side
    angle: float = 4.0  # degrees: the 5-point fit and the crop level the eyes differently
    erosion: float = 0.1  # the tool erodes its mask by a tenth of the square's side…
    feather: float = 0.05  # …and blurs it over a twentieth
    colour: float = 0.04  # per-channel shift of the rendered face, share of 255
    soft_sigma: tuple[float, float] = (0.0, 0.9)  # generator smoothing, in its own pixels


def _rotated_square(centre: tuple[float, float], half: float, angle: float) -> np.ndarray:
    """(4, 2) float64 corners of a square turned by ``angle`` radians about ``centre``."""
    c, s = math.cos(angle), math.sin(angle)
    pts = [(-half, -half), (half, -half), (half, half), (-half, half)]
    return np.array([(centre[0] + c * x - s * y, centre[1] + s * x + c * y) for x, y in pts])


def swap_paste(
    img: np.ndarray,
    rng: np.random.Generator,
    crop_scale: float,
    cfg: SwapPasteConfig | None = None,
) -> np.ndarray:
    """A pseudo-fake as a 128-px live swapper pastes its face (module docstring).

    Parameters
    ----------
    img
        (H, W, 3) uint8 real face cut by the product's crop at ``crop_scale``.
    crop_scale
        The crop's side against the authors' square (the model's contract);
        it fixes where the aligned square lies in the crop.

    Returns
    -------
    (H, W, 3) uint8, the same face re-rendered inside the square.
    """
    cfg = cfg or SwapPasteConfig()
    h, w = img.shape[:2]
    span = w / (crop_scale * L_FACTOR * K_AUTHORS)  # crop pixels per face span
    side = ARCFACE_SIDE_SPANS * span * rng.uniform(*cfg.size)
    cx = (w - 1) / 2 + rng.uniform(-cfg.centre_jitter, cfg.centre_jitter) * side
    cy = (h - 1) / 2 - ARCFACE_CENTRE_ABOVE_NOSE_SPANS * span
    cy += rng.uniform(-cfg.centre_jitter, cfg.centre_jitter) * side
    angle = math.radians(rng.uniform(-cfg.angle, cfg.angle))
    grid = cfg.generator_px
    if rng.random() >= cfg.p_native_grid:
        grid = round(grid * rng.uniform(*cfg.grid_factor))
    # crop → generator grid: the square's centre to the grid's, its side to the grid's
    k = grid / side
    c, s = math.cos(angle) * k, math.sin(angle) * k
    g0 = (grid - 1) / 2
    m = np.array([[c, s, g0 - c * cx - s * cy], [-s, c, g0 + s * cx - c * cy]])
    face = cv2.warpAffine(
        img, m, (grid, grid), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    ).astype(np.float32)
    face += rng.uniform(-cfg.colour, cfg.colour, 3).astype(np.float32) * 255
    face = np.clip(face, 0, 255)
    sigma = rng.uniform(*cfg.soft_sigma)
    if sigma > 0.3:
        face = cv2.GaussianBlur(face, (0, 0), sigma)
    back = cv2.warpAffine(
        face,
        m,
        (w, h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    half = side / 2 - cfg.erosion * side / 2
    mask = np.zeros((h, w), np.float32)
    corners = _rotated_square((cx, cy), half, angle)
    cv2.fillConvexPoly(mask, np.round(corners * 16).astype(np.int32), 1.0, cv2.LINE_AA, 4)
    # OpenCV's sigma for the tool's kernel; the mask goes on past the crop, so its
    # edge is replicated there rather than faded
    sigma = 0.3 * (cfg.feather * side - 1) + 0.8
    mask = cv2.GaussianBlur(mask, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)[:, :, None]
    out = back * mask + img.astype(np.float32) * (1 - mask)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def pseudo_fake(
    img: np.ndarray, rng: np.random.Generator, style: str, crop_scale: float
) -> np.ndarray:
    """A pseudo-fake of one (H, W, 3) uint8 real crop in a ``--blend-style``."""
    if style == "inswap":
        return swap_paste(img, rng, crop_scale)
    return self_blend(img, rng)


__all__ = [
    "BLEND_STYLES",
    "BlendConfig",
    "SwapPasteConfig",
    "blend_mask",
    "pseudo_fake",
    "self_blend",
    "swap_paste",
]
