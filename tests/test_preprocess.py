"""The one preprocessing contract: BGR uint8 crop → resized by PIL NEAREST → the graphs' uint8
input, or (training) RGB float NCHW."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from mesolive.classify.preprocess import AUTHORS, Preprocess, fake_score, resize_nearest, to_batch


@pytest.mark.parametrize("shape", [(224, 224), (100, 137), (301, 300), (512, 512), (40, 400)])
def test_nearest_resize_matches_pil_pixel_for_pixel(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    pil = np.asarray(Image.fromarray(img).resize((256, 256), Image.NEAREST))
    assert np.array_equal(resize_nearest(img), pil)


def test_plain_inter_nearest_would_differ() -> None:
    """Guards the choice of INTER_NEAREST_EXACT: the obvious flag is not PIL's rule."""
    img = np.random.default_rng(1).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    pil = np.asarray(Image.fromarray(img).resize((256, 256), Image.NEAREST))
    assert not np.array_equal(cv2.resize(img, (256, 256), interpolation=cv2.INTER_NEAREST), pil)


def test_batch_is_rgb_nchw_unit_range() -> None:
    bgr = np.zeros((256, 256, 3), np.uint8)
    bgr[..., 0] = 255  # pure blue in OpenCV's order
    x = to_batch([bgr, bgr])
    assert x.shape == (2, 3, 256, 256) and x.dtype == np.float32
    assert x[:, 2].min() == 1.0 and x[:, :2].max() == 0.0  # blue lands in channel 2 (RGB)


def test_pixels_are_the_resized_crops_in_bgr_written_where_asked() -> None:
    rng = np.random.default_rng(2)
    crops = [rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for s in (200, 256, 300)]
    pixels = AUTHORS.pixels(crops)
    assert pixels.shape == (3, 256, 256, 3) and pixels.dtype == np.uint8
    for got, crop in zip(pixels, crops, strict=True):
        assert np.array_equal(got, resize_nearest(crop))
    buffer = np.zeros((3, 256, 256, 3), np.uint8)
    assert AUTHORS.pixels([c[..., ::-1] for c in crops], "rgb", out=buffer) is buffer
    assert np.array_equal(buffer, pixels)
    with pytest.raises(ValueError, match=r"out: expected \(2, 256, 256, 3\) uint8"):
        AUTHORS.pixels(crops[:2], out=buffer)


@pytest.mark.parametrize(
    "contract", [AUTHORS, Preprocess(colour="bgr"), Preprocess(value_range=(-1.0, 1.0))]
)
def test_the_float_batch_is_the_pixels_through_the_pixel_map(contract: Preprocess) -> None:
    """Training's float batch and the graphs' fold apply one map to the same pixels."""
    crops = np.random.default_rng(3).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    channels, gain, low = contract.pixel_map()
    want = low + gain * crops[..., list(channels)].transpose(0, 3, 1, 2).astype(np.float64)
    np.testing.assert_allclose(contract.to_batch(crops), want, atol=1e-6)


def test_bad_crop_is_rejected() -> None:
    with pytest.raises(ValueError, match="uint8"):
        to_batch([np.zeros((64, 64, 3), np.float32)])


def test_fake_score_is_one_minus_p_real() -> None:
    np.testing.assert_allclose(fake_score(np.array([[0.9], [0.2]])), [0.1, 0.8], rtol=1e-6)
