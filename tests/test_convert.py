"""The converted ONNX graphs equal the authors' Keras network."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import onnx
import pytest

from mesolive.backends.onnxruntime import OnnxRuntimeRunner
from mesolive.classify.preprocess import AUTHORS, Preprocess
from mesolive.errors import ModelError
from mesolive.imageio import read_image
from mesolive.models.convert import convert_to_onnx
from mesolive.models.keras_h5 import load_keras_weights
from mesolive.models.onnx_graph import INPUT_NAME, build_onnx, image_ranges

from .conftest import H5_OF, MODEL_NAMES, MODELS, nchw

# FP16 keeps 10 mantissa bits: relative error ~1e-3 per op, compounding over
# ~20 layers. Logits reach |30| (MesoInception), so compare relative to scale.
FP16_REL_TOL = 0.02


def _logits(graph: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    with OnnxRuntimeRunner(graph.SerializeToString()) as runner:
        out = runner.infer({"input": x})
    np.testing.assert_allclose(out["p_real"], 1 / (1 + np.exp(-out["logit"])), atol=1e-6)
    return out["logit"][:, 0]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_logits_match_keras_golden(name: str, golden: dict[str, np.ndarray]) -> None:
    """Both forms: the graph mesolive runs (uint8 BGR in) and the float one training checks."""
    w = load_keras_weights(MODELS / f"{H5_OF[name]}.h5", expect=name.split("-")[0])
    rgb = golden["images_u8"]
    ref = golden[f"{H5_OF[name]}_logit"]
    assert np.abs(_logits(build_onnx(w, contract=AUTHORS), rgb[..., ::-1]) - ref).max() < 1e-4
    assert np.abs(_logits(build_onnx(w), nchw(rgb)) - ref).max() < 1e-4


@pytest.fixture(scope="module")
def real_crops(shared: Path) -> np.ndarray:
    """The authors' four sample faces and 40 DFDC crops, (44, 256, 256, 3) uint8 BGR."""
    files = sorted((shared / "samples" / "faces").rglob("*.jpg"))
    for label in ("real", "fake"):
        files += sorted((shared / "faces" / "dfdc" / label).glob("*.jpg"))[:20]
    return AUTHORS.pixels([read_image(f) for f in files])


@pytest.mark.parametrize(
    "contract",
    [AUTHORS, Preprocess(colour="bgr"), Preprocess(value_range=(-1.0, 1.0))],
    ids=["authors", "bgr", "centred"],
)
@pytest.mark.parametrize("name", ["meso4-df", "mesoinception4-f2f"])
def test_pixels_graph_equals_the_float_graph_on_real_crops(
    name: str, contract: Preprocess, real_crops: np.ndarray
) -> None:
    """The 1/255, the colour swap and an offset folded into the weights change nothing.

    The float graph is the graph before the fold, fed the contract's float
    batch. The fold is exact up to float rounding: on these crops Meso-4 moved
    by at most 4e-6 (the authors' contract), MesoInception-4 (logits up to
    |60|) by 2.6e-5, 9e-7 of
    its logit scale, as much as ONNX Runtime's own optimisation levels move
    the unchanged float graph (1.9e-5 and 2.7e-5).
    """
    w = load_keras_weights(MODELS / f"{H5_OF[name]}.h5")
    want = _logits(build_onnx(w), contract.to_batch(real_crops))
    got = _logits(build_onnx(w, contract=contract), real_crops)
    assert np.abs(got - want).max() <= 2e-6 * max(1.0, float(np.abs(want).max()))
    if contract == AUTHORS and name.startswith("meso4"):
        assert np.abs(got - want).max() < 1e-5


def test_pixels_graph_does_no_float_arithmetic_before_the_first_convolution() -> None:
    """Only the Cast and the layout change stand between the uint8 input and the weights."""
    for h5 in ("Meso4_DF", "MesoInception_DF"):
        graph = build_onnx(load_keras_weights(MODELS / f"{h5}.h5"), contract=AUTHORS).graph
        assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
        made_by = {o: n for n in graph.node for o in n.output}
        for conv in (n for n in graph.node if n.op_type == "Conv"):
            chain, x = [], conv.input[0]
            while x in made_by and made_by[x].op_type in ("Cast", "Transpose"):
                chain.append(made_by[x].op_type)
                x = made_by[x].input[0]
            if x == "input":
                assert chain == ["Transpose", "Cast"], h5
        assert list(
            image_ranges(build_onnx(load_keras_weights(MODELS / f"{h5}.h5"), contract=AUTHORS))
        ) == [next(n.output[0] for n in graph.node if n.op_type == "Transpose")]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fp16_graph_tracks_fp32(name: str, golden: dict[str, np.ndarray]) -> None:
    w = load_keras_weights(MODELS / f"{H5_OF[name]}.h5")
    fp16 = build_onnx(w, "fp16", AUTHORS)
    # every weight is float16; the int64 tensors are the shapes of the folded pools
    types = {i.data_type for i in fp16.graph.initializer}
    assert types - {onnx.TensorProto.INT64} == {onnx.TensorProto.FLOAT16}
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert fp16.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    logits = _logits(fp16, golden["images_u8"][..., ::-1])
    ref = golden[f"{H5_OF[name]}_logit"]
    scale = max(1.0, float(np.abs(ref).max()))
    assert np.abs(logits - ref).max() / scale < FP16_REL_TOL
    assert np.array_equal(logits > 0, ref > 0)  # same decision on every row


def test_layers_map_by_creation_index_not_graph_order() -> None:
    """MesoInception's graph order lists conv2d_2 before conv2d_1; we must not use it."""
    w = load_keras_weights(MODELS / "MesoInception_DF.h5")
    with h5py.File(MODELS / "MesoInception_DF.h5") as f:
        first_created = np.asarray(f["conv2d_1"]["conv2d_1"]["kernel:0"])
        graph_order = [n.decode() for n in f.attrs["layer_names"]]
    assert graph_order[1] == "conv2d_2"
    assert np.array_equal(w.convs[0].kernel, first_created)
    assert w.convs[0].kernel.shape == (1, 1, 3, 1)  # branch a of InceptionLayer(1, 4, 4, 2)


def test_wrong_architecture_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="wrong architecture"):
        convert_to_onnx(MODELS / "Meso4_DF.h5", tmp_path / "x.onnx", arch="mesoinception4")
    assert not (tmp_path / "x.onnx").exists()


def test_not_a_weights_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(ModelError, match=rf"^not a MesoNet Keras \.h5 file: {bad} \(") as info:
        load_keras_weights(bad)
    assert "\n" not in str(info.value)


def test_truncated_layer_shapes_are_refused(tmp_path: Path) -> None:
    """A file whose conv shapes fit neither architecture fails loudly."""
    src = tmp_path / "m.h5"
    shutil.copy(MODELS / "Meso4_DF.h5", src)
    with h5py.File(src, "r+") as f:
        g = f["conv2d_6"]["conv2d_6"]
        del g["kernel:0"]
        g["kernel:0"] = np.zeros((3, 3, 8, 8), np.float32)
    with pytest.raises(ModelError, match="convolution 2"):
        load_keras_weights(src)


def test_converted_file_reads_a_dynamic_batch_of_uint8_crops(tmp_path: Path) -> None:
    out = convert_to_onnx(MODELS / "Meso4_F2F.h5", tmp_path / "m.onnx", arch="meso4")
    model = onnx.load(out)
    tensor = model.graph.input[0].type.tensor_type
    assert tensor.elem_type == onnx.TensorProto.UINT8
    assert tensor.shape.dim[0].dim_param == "N"
    assert [d.dim_value for d in tensor.shape.dim[1:]] == [256, 256, 3]
    with OnnxRuntimeRunner(out) as runner:
        for n in (1, 5):
            x = np.zeros((n, 256, 256, 3), np.uint8)
            assert runner.infer({"input": x})["logit"].shape == (n, 1)


def test_graph_layout_for_the_cpu(tmp_path: Path) -> None:
    """Meso-4's 8-filter stages are folded, and MesoInception-4's undilated 3×3 branch
    at 256×256; MesoInception-4's convolutions of fewer than 16 filters stay in NCHW
    under ONNX Runtime while its 16-filter ones are blocked (NCHWc).

    The golden tests above check that both still compute the authors' function.
    """
    import onnxruntime as ort

    from mesolive.backends.onnxruntime import NCHWC_BLOCK, for_cpu, session_options

    m4 = build_onnx(load_keras_weights(MODELS / "Meso4_DF.h5"), contract=AUTHORS)
    ops = [n.op_type for n in m4.graph.node]
    assert ops.count("ReduceMax") == 2 and ops.count("MaxPool") == 2  # stages 1-2 folded
    folded = [i for i in m4.graph.initializer if len(i.dims) == 4][:2]
    assert [list(i.dims) for i in folded] == [[32, 3, 4, 4], [32, 8, 6, 6]]
    mi4 = build_onnx(load_keras_weights(MODELS / "MesoInception_DF.h5"), contract=AUTHORS)
    pools = [n for n in mi4.graph.node if n.op_type in ("MaxPool", "ReduceMax")]
    first, second = (n for n in mi4.graph.node if n.op_type == "Concat")
    for concat in (first, second):  # branches pooled before the Concat
        assert set(concat.input) <= {p.output[0] for p in pools}
    made_by = {o: n for n in mi4.graph.node for o in n.output}
    assert [made_by[i].op_type for i in first.input] == [
        "MaxPool",
        "ReduceMax",
        "MaxPool",
        "MaxPool",
    ]
    assert {made_by[i].op_type for i in second.input} == {"MaxPool"}
    m4_bytes = m4.SerializeToString()
    assert for_cpu(m4_bytes) == m4_bytes
    graph = for_cpu(mi4.SerializeToString())
    pinned = {i.name for i in onnx.load_from_string(graph).graph.input} - {INPUT_NAME}
    weights = {i.name: i for i in mi4.graph.initializer}
    convs = [n for n in mi4.graph.node if n.op_type == "Conv"]
    filters = {n.input[1]: weights[n.input[1]].dims[0] for n in convs}
    assert pinned == {w for w, f in filters.items() if f < NCHWC_BLOCK} and len(pinned) == 13
    options = session_options(1)
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    run = onnx.load(tmp_path / "optimized.onnx")
    blocked = [n.name for n in run.graph.node if n.domain == "com.microsoft.nchwc"]
    plain = [n for n in run.graph.node if n.op_type == "FusedConv"]  # Conv + ReLU, as given
    assert {n.input[1] for n in plain} == pinned  # never padded to a block
    for conv in ("relu_15", "relu_84", "relu_94"):  # the folded branch, the 16-filter stages
        assert f"{conv}_nchwc" in blocked
