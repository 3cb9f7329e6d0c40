"""Self-blended pseudo-fakes: what changes, what does not, and repeatability."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mesolive.classify.preprocess import AUTHORS
from mesolive.imageio import read_image
from mesolive.train.blend import BlendConfig, blend_mask, self_blend


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
