"""The runner contract and its ONNX Runtime implementation."""

from __future__ import annotations

import numpy as np
import pytest

from mesolive.backends.base import split_batches
from mesolive.classify.mesonet import MesoClassifier, load_classifier


@pytest.mark.parametrize(
    ("n", "max_batch", "sizes"),
    [(0, 8, []), (5, None, [5]), (8, 8, [8]), (9, 8, [8, 1]), (20, 6, [6, 6, 6, 2])],
)
def test_split_batches(n: int, max_batch: int | None, sizes: list[int]) -> None:
    slices = split_batches(n, max_batch)
    assert [s.stop - s.start for s in slices] == sizes
    assert sum(sizes) == n


def test_classifier_splits_batches_like_one_call() -> None:
    clf = load_classifier("meso4-df", backend="onnxruntime-cpu")
    with clf:
        rng = np.random.default_rng(0)
        crops = [rng.integers(0, 256, (180, 200, 3), dtype=np.uint8) for _ in range(7)]
        whole = clf.score(crops)
        clf.runner.max_batch = 3
        split = clf.score(crops)
        clf.warmup(2)
    np.testing.assert_allclose(whole.logit, split.logit, atol=1e-5)
    assert whole.fake.shape == (7,) and whole.fake.dtype == np.float32
    assert isinstance(clf, MesoClassifier) and clf.backend == "onnxruntime-cpu"


def test_empty_batch() -> None:
    with load_classifier("meso4-f2f") as clf:
        assert clf.score([]).fake.shape == (0,)
