"""Self-blended pseudo-fakes: what changes, what does not, and repeatability."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mesolive.classify.crops import CropReader
from mesolive.classify.preprocess import AUTHORS, Preprocess
from mesolive.errors import InputError
from mesolive.imageio import read_image
from mesolive.train.blend import (
    BLEND_STYLES,
    BlendConfig,
    blend_mask,
    pseudo_fake,
    self_blend,
    swap_paste,
)

LIVE = 1 / 1.3  # the shipped models' crop scale


@pytest.fixture(scope="module")
def real_faces(shared: Path) -> list[np.ndarray]:
    files = sorted((shared / "train" / "dfdc" / "real").glob("*.jpg"))[:8]
    return [AUTHORS.resize(read_image(f)) for f in files]


def test_mask_covers_the_inner_face_and_spares_the_corners() -> None:
    cfg = BlendConfig(opacity=(1.0,))
    for seed in range(50):
        m = blend_mask(256, 256, np.random.default_rng(seed), cfg)
        assert m.dtype == np.float32 and m.shape == (256, 256)
        assert 0.0 <= m.min() and m.max() <= 1.0
        assert m[128:160, 112:144].min() > 0.9  # nose and mouth: always inside
        for corner in (m[:12, :12], m[:12, -12:], m[-12:, :12], m[-12:, -12:]):
            assert corner.max() < 0.05  # background and hair: never pasted


def test_self_blend_alters_the_face_only(real_faces: list[np.ndarray]) -> None:
    changed_inner, changed_corner = [], []
    for k, img in enumerate(real_faces):
        out = self_blend(img, np.random.default_rng(k))
        assert out.shape == img.shape and out.dtype == np.uint8
        diff = np.abs(out.astype(np.int16) - img.astype(np.int16)).mean(axis=2)
        changed_inner.append(diff[96:192, 80:176].mean())
        changed_corner.append(diff[:12, :12].mean())
    assert min(changed_inner) > 2.0  # a visible colour/texture change on every face
    assert max(changed_corner) < 0.5


def test_self_blend_is_repeatable(real_faces: list[np.ndarray]) -> None:
    img = real_faces[0]
    a = self_blend(img, np.random.default_rng(3))
    b = self_blend(img, np.random.default_rng(3))
    c = self_blend(img, np.random.default_rng(4))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.fixture(scope="module")
def cut_faces(shared: Path) -> dict[float, list[np.ndarray]]:
    """Sharp genuine photos cut by the product's crop, at the shipped and the authors' scale."""
    files = sorted((shared / "train" / "photos" / "real").glob("real-vs-fake_real_*.jpg"))[:6]
    out = {}
    for scale in (LIVE, 1.0):
        with CropReader(Preprocess(scale=scale, precut="recut"), model_dir=shared / "models") as r:
            out[scale] = [r.read(f) for f in files]
    return out


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=2)


def _detail(img: np.ndarray) -> float:
    """Variance of the Laplacian of the middle of the face: what a 128-px grid takes away."""
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[64:192, 64:192]
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def test_swap_paste_re_renders_all_but_a_strip_below_the_chin(
    cut_faces: dict[float, list[np.ndarray]],
) -> None:
    """At the shipped crop the swapper's square is larger than the crop: the face,
    forehead and cheeks lose detail; only the bottom rows keep the original."""
    upper, bottom, kept = [], [], []
    for k, img in enumerate(cut_faces[LIVE]):
        out = swap_paste(img, np.random.default_rng(k), LIVE)
        assert out.shape == img.shape and out.dtype == np.uint8
        diff = _diff(out, img)
        upper.append(diff[:160].mean())
        bottom.append(diff[-6:].mean())
        kept.append(_detail(out) / _detail(img))
    assert min(upper) > 1.5  # every face re-rendered, up to the crop's top edge
    assert np.mean(bottom) < 0.4 * np.mean(upper)
    assert max(kept) < 0.7  # the generator's grid: detail lost on every face


def test_swap_paste_square_lies_inside_the_authors_wider_crop(
    cut_faces: dict[float, list[np.ndarray]],
) -> None:
    """At the authors' scale the same square is smaller than the crop: its lower
    corners are never pasted, while the middle always is."""
    for k, img in enumerate(cut_faces[1.0]):
        diff = _diff(swap_paste(img, np.random.default_rng(k), 1.0), img)
        assert diff[-12:, :12].mean() < 0.2 and diff[-12:, -12:].mean() < 0.2
        assert diff[96:160, 96:160].mean() > 1.5


def test_pseudo_fakes_are_repeatable_in_either_style(
    cut_faces: dict[float, list[np.ndarray]],
) -> None:
    img = cut_faces[LIVE][0]
    for style in BLEND_STYLES:
        a = pseudo_fake(img, np.random.default_rng(3), style, LIVE)
        assert np.array_equal(a, pseudo_fake(img, np.random.default_rng(3), style, LIVE))
        assert not np.array_equal(a, pseudo_fake(img, np.random.default_rng(4), style, LIVE))
    inswap = pseudo_fake(img, np.random.default_rng(3), "inswap", LIVE)
    assert np.array_equal(inswap, swap_paste(img, np.random.default_rng(3), LIVE))
    ellipse = pseudo_fake(img, np.random.default_rng(3), "ellipse", LIVE)
    assert np.array_equal(ellipse, self_blend(img, np.random.default_rng(3)))


def test_an_unknown_blend_style_is_refused_by_name() -> None:
    from mesolive.train.trainer import TrainConfig

    with pytest.raises(InputError, match="--blend-style oval: expected one of ellipse, inswap"):
        TrainConfig(name="x", data=(), blend_style="oval")
