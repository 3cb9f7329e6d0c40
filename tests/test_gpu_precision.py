"""The FP16 and INT8 graphs TensorRT compiles, run here in ONNX Runtime against float32.

TensorRT takes precision from the graph's types (strong typing), so these
graphs *are* the precision of the engines; only TensorRT's own kernels are
left for a GPU machine (tests/test_gpu_trt.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from mesolive.backends.onnxruntime import OnnxRuntimeRunner
from mesolive.backends.verify import (
    TOLERANCE,
    Comparison,
    logits,
    throughput,
    verification_inputs,
)
from mesolive.classify.preprocess import AUTHORS
from mesolive.imageio import read_image
from mesolive.metrics import roc_auc
from mesolive.models.keras_h5 import load_keras_weights
from mesolive.models.onnx_graph import build_onnx, image_ranges
from mesolive.models.quantize import QMAX, calibrate, conv_inputs, equalize, int8_graph

from .conftest import H5_OF, MODEL_NAMES, MODELS, crops_of, training_pixels


@pytest.fixture(scope="module")
def sample_faces(shared: Path) -> list[np.ndarray]:
    return [read_image(f) for f in sorted((shared / "samples" / "faces").rglob("*.jpg"))]


@pytest.fixture(scope="module")
def dfdc(shared: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 600 DFDC test crops as a network batch, and labels (1 = fake)."""
    real = crops_of(shared / "faces" / "dfdc" / "real")
    fake = crops_of(shared / "faces" / "dfdc" / "fake")
    return AUTHORS.pixels(real + fake), np.array([0] * len(real) + [1] * len(fake))


@pytest.fixture(scope="module")
def calibration_batch(shared: Path) -> np.ndarray:
    """64 crops of the *training* DFDC set: calibration never sees the test faces."""
    return training_pixels(shared, 32)


def _batches(x: np.ndarray) -> Iterator[np.ndarray]:
    return (x[i : i + 32] for i in range(0, len(x), 32))


def _weights(name: str):
    return load_keras_weights(MODELS / f"{H5_OF[name]}.h5")


def _graph(name: str, precision: str = "fp32") -> onnx.ModelProto:
    """The graph mesolive converts for ``name``: uint8 crops in (the authors' contract)."""
    return build_onnx(_weights(name), precision, AUTHORS)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fp16_graph_within_the_stated_tolerance(
    name: str, sample_faces: list[np.ndarray], shared: Path
) -> None:
    faces = sample_faces + crops_of(shared / "faces" / "dfdc" / "fake", 30)
    faces += crops_of(shared / "faces" / "dfdc" / "real", 30)
    names, x = verification_inputs(faces)
    with (
        OnnxRuntimeRunner(_graph(name, "fp16").SerializeToString()) as fp16,
        OnnxRuntimeRunner(_graph(name).SerializeToString()) as fp32,
    ):
        c = Comparison(tuple(names), logits(fp16, x), logits(fp32, x), "fp16")
    assert c.passed, c.line()
    # What verify.py's docstring states was measured: at most ~0.4 % of the scale.
    assert c.max_diff / c.scale < 0.005, c.line()
    faces_ref, faces_fp16 = c.reference[: len(faces)], c.candidate[: len(faces)]
    assert np.array_equal(faces_ref > 0, faces_fp16 > 0)


def test_comparison_flags_a_large_difference_and_a_flipped_decision() -> None:
    ref = np.array([5.0, -3.0, 0.01, 2.0], np.float32)
    ok = Comparison(("a", "b", "c", "d"), ref + 0.05, ref, "fp16")
    assert ok.scale == 5.0 and ok.tolerance == pytest.approx(0.1)
    assert ok.passed and ok.decisions_differ == 0
    far = Comparison(("a", "b", "c", "d"), ref + np.array([0, 0, 0, 0.5], np.float32), ref, "fp16")
    assert not far.passed and far.worst == "d"
    assert "FAILED" in far.line() and "row d" in far.line()
    # A flip of a logit inside the tolerance (row c) is not counted; one outside is.
    flip = Comparison(("a", "b", "c"), np.array([5.0, 0.05, -0.02], np.float32), ref[:3], "int8")
    assert flip.decisions_differ == 1


def test_quantize_emits_symmetric_qdq_on_every_convolution(calibration_batch: np.ndarray) -> None:
    model = _graph("meso4-df")
    before = model.SerializeToString()
    # crops at half brightness: the image's range is still 0..255, known, not calibrated
    q, cal = int8_graph(model, lambda: (x // 2 for x in _batches(calibration_batch)))
    assert model.SerializeToString() == before  # the float32 graph is not modified
    assert cal.images == 64 and cal.method == "percentile-99.99"
    (image,) = image_ranges(model)
    assert (cal.low[image], cal.high[image], cal.amax[image]) == (0.0, 255.0, 255.0)
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    made_by = {o: n for n in q.graph.node for o in n.output}
    convs = [n for n in q.graph.node if n.op_type == "Conv"]
    assert len(convs) == 4
    for conv in convs:
        x_dq, w_dq = made_by[conv.input[0]], made_by[conv.input[1]]
        assert x_dq.op_type == w_dq.op_type == "DequantizeLinear"
        x_q = made_by[x_dq.input[0]]
        assert x_q.op_type == "QuantizeLinear"
        assert inits[x_q.input[2]].dtype == np.int8 and inits[x_q.input[2]] == 0
        assert inits[x_q.input[1]].shape == () and inits[x_q.input[1]] > 0  # per tensor
        w_int8, w_scale, w_zp = (inits[i] for i in w_dq.input)
        assert w_int8.dtype == np.int8 and np.abs(w_int8).max() == QMAX
        assert w_scale.shape == (w_int8.shape[0],)  # per output channel
        assert {a.name: a.i for a in w_dq.attribute} == {"axis": 0}
        assert w_zp.dtype == np.int8 and not w_zp.any()
    assert [i.name for i in q.graph.input] == ["input"]
    assert [o.name for o in q.graph.output] == ["logit", "p_real"]
    assert q.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


@pytest.mark.parametrize("name", ["meso4-f2f", "mesoinception4-df"])
def test_equalization_changes_nothing_in_float(name: str, calibration_batch: np.ndarray) -> None:
    model = _graph(name)
    balanced = equalize(model, calibrate(model, _batches(calibration_batch[:16])))
    assert balanced.SerializeToString() != model.SerializeToString()
    _, x = verification_inputs(n_random=4, n_smooth=4)
    with (
        OnnxRuntimeRunner(model.SerializeToString()) as a,
        OnnxRuntimeRunner(balanced.SerializeToString()) as b,
    ):
        ref, got = logits(a, x), logits(b, x)
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize(
    ("name", "min_corr"),
    [
        ("meso4-df", 0.98),  # measured 0.993
        ("meso4-f2f", 0.98),  # measured 0.990; 0.905 without equalization
    ],
)
def test_int8_graph_keeps_the_decisions(
    name: str,
    min_corr: float,
    calibration_batch: np.ndarray,
    sample_faces: list[np.ndarray],
    dfdc: tuple[np.ndarray, np.ndarray],
) -> None:
    model = _graph(name)
    q, _ = int8_graph(model, lambda: _batches(calibration_batch))
    x = np.concatenate([AUTHORS.pixels(sample_faces), dfdc[0]])
    with (
        OnnxRuntimeRunner(model.SerializeToString()) as fp32,
        OnnxRuntimeRunner(q.SerializeToString()) as int8,
    ):
        ref, got = logits(fp32, x, 64), logits(int8, x, 64)
    # The authors' four sample faces: the same decisions.
    assert np.array_equal(ref[:4] > 0, got[:4] > 0)
    # The 600 DFDC test faces: logits track float32, ranking (AUC) barely moves,
    # and decisions flip only for faces close to the threshold.
    t_ref, t_got, labels = ref[4:], got[4:], dfdc[1]
    assert np.corrcoef(t_ref, t_got)[0, 1] >= min_corr
    assert abs(roc_auc(labels, -t_got) - roc_auc(labels, -t_ref)) < 0.01
    flips = (t_ref > 0) != (t_got > 0)
    assert flips.mean() < 0.07
    assert np.abs(t_ref[flips]).max(initial=0) < 1.0  # |logit| < 1: p_real within 0.27-0.73


def test_every_convolution_input_gets_a_range(calibration_batch: np.ndarray) -> None:
    model = _graph("mesoinception4-df")
    cal = calibrate(model, _batches(calibration_batch[:8]))
    assert set(cal.amax) == set(conv_inputs(model))
    # Per inception block: 1 input shared by the four branches + 3 inner ReLUs; then 2 convs.
    assert len(cal.amax) == 4 + 4 + 1 + 1
    assert all(v > 0 for v in cal.amax.values())
    assert all(a.shape[0] > 0 and np.all(a >= 0) for a in cal.channel_amax.values())


def test_throughput_measures_a_runner() -> None:
    with OnnxRuntimeRunner(_graph("meso4-df").SerializeToString()) as r:
        t = throughput(r, 2, seconds=0.05, min_calls=2)
    assert t.batch == 2 and t.faces_per_s > 0 and t.ms_per_call > 0
    assert "faces/s" in t.line()


def test_tolerances_are_stated_for_every_precision() -> None:
    assert set(TOLERANCE) == {"fp32", "fp16", "int8"}
    assert TOLERANCE["fp32"] < TOLERANCE["fp16"] < TOLERANCE["int8"]
