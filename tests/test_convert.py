"""The converted ONNX graphs equal the authors' Keras network."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import onnx
import pytest

from mesolive.backends.onnxruntime import OnnxRuntimeRunner
from mesolive.errors import ModelError
from mesolive.models.convert import convert_to_onnx
from mesolive.models.keras_h5 import load_keras_weights
from mesolive.models.onnx_graph import build_onnx

from .conftest import H5_OF, MODEL_NAMES, MODELS, nchw

# FP16 keeps 10 mantissa bits: relative error ~1e-3 per op, compounding over
# ~20 layers. Logits reach |30| (MesoInception), so compare relative to scale.
FP16_REL_TOL = 0.02


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_logits_match_keras_golden(name: str, golden: dict[str, np.ndarray]) -> None:
    w = load_keras_weights(MODELS / f"{H5_OF[name]}.h5", expect=name.split("-")[0])
    with OnnxRuntimeRunner(build_onnx(w).SerializeToString()) as runner:
        out = runner.infer({"input": nchw(golden["images_u8"])})
    logits = out["logit"][:, 0]
    ref = golden[f"{H5_OF[name]}_logit"]
    assert np.abs(logits - ref).max() < 1e-4
    np.testing.assert_allclose(out["p_real"][:, 0], 1 / (1 + np.exp(-logits)), atol=1e-6)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fp16_graph_tracks_fp32(name: str, golden: dict[str, np.ndarray]) -> None:
    w = load_keras_weights(MODELS / f"{H5_OF[name]}.h5")
    fp16 = build_onnx(w, "fp16")
    # every weight is float16; the int64 tensors are the shapes of the folded pools
    types = {i.data_type for i in fp16.graph.initializer}
    assert types - {onnx.TensorProto.INT64} == {onnx.TensorProto.FLOAT16}
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    with OnnxRuntimeRunner(fp16.SerializeToString()) as runner:
        logits = runner.infer({"input": nchw(golden["images_u8"])})["logit"][:, 0]
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


def test_converted_file_has_dynamic_batch(tmp_path: Path) -> None:
    out = convert_to_onnx(MODELS / "Meso4_F2F.h5", tmp_path / "m.onnx", arch="meso4")
    model = onnx.load(out)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N"
    assert [d.dim_value for d in dims[1:]] == [3, 256, 256]
    with OnnxRuntimeRunner(out) as runner:
        for n in (1, 5):
            assert runner.infer({"input": np.zeros((n, 3, 256, 256), np.float32)})[
                "logit"
            ].shape == (n, 1)


def test_graph_layout_for_the_cpu() -> None:
    """Meso-4's 8-filter stages are folded; MesoInception-4 keeps ONNX Runtime in NCHW.

    The golden tests above check that both still compute the authors' function.
    """
    from mesolive.backends.onnxruntime import _disabled

    m4 = build_onnx(load_keras_weights(MODELS / "Meso4_DF.h5"))
    ops = [n.op_type for n in m4.graph.node]
    assert ops.count("ReduceMax") == 2 and ops.count("MaxPool") == 2  # stages 1-2 folded
    folded = [i for i in m4.graph.initializer if len(i.dims) == 4][:2]
    assert [list(i.dims) for i in folded] == [[32, 3, 4, 4], [32, 8, 6, 6]]
    mi4 = build_onnx(load_keras_weights(MODELS / "MesoInception_DF.h5"))
    pools = [n for n in mi4.graph.node if n.op_type == "MaxPool"]
    concat = next(n for n in mi4.graph.node if n.op_type == "Concat")
    assert set(concat.input) <= {p.output[0] for p in pools}  # branches pooled before Concat
    assert _disabled(mi4.SerializeToString()) == ["NchwcTransformer"]
    assert _disabled(m4.SerializeToString()) == []
