"""Meso-4 in lanes (OpenVINO's layout) computes the authors' function, and its runner pads rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from mesolive.backends.onnxruntime import OnnxRuntimeRunner
from mesolive.classify.preprocess import AUTHORS, Preprocess
from mesolive.errors import ModelError
from mesolive.models import registry
from mesolive.models.convert import convert_to_onnx
from mesolive.models.keras_h5 import MesoWeights, load_keras_weights
from mesolive.models.lanes_graph import FACES_KEY, build_lanes_onnx, faces_per_row, lanes_apply
from mesolive.models.onnx_graph import build_onnx

from .conftest import H5_OF, MODELS


def _weights(name: str) -> MesoWeights:
    return load_keras_weights(MODELS / f"{H5_OF[name]}.h5", expect=name.split("-")[0])


def _logits(graph: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    with OnnxRuntimeRunner(graph.SerializeToString()) as runner:
        out = runner.infer({"input": x})
    np.testing.assert_allclose(out["p_real"], 1 / (1 + np.exp(-out["logit"])), atol=1e-6)
    return out["logit"][:, 0]


@pytest.mark.parametrize("name", ["meso4-df", "meso4-f2f"])
def test_one_network_reads_two_faces_a_row(name: str, golden: dict[str, np.ndarray]) -> None:
    graph = build_lanes_onnx([_weights(name)], AUTHORS)
    assert faces_per_row(graph) == 2
    bgr = golden["images_u8"][..., ::-1]  # 14 faces: 7 rows
    ref = golden[f"{H5_OF[name]}_logit"]
    assert np.abs(_logits(graph, bgr) - ref).max() < 1e-4


@pytest.mark.parametrize(
    "contract",
    [AUTHORS, Preprocess(colour="bgr"), Preprocess(value_range=(-1.0, 1.0))],
    ids=["authors", "bgr", "centred"],
)
def test_a_union_runs_as_one_network(contract: Preprocess, test_faces: np.ndarray) -> None:
    nets = [_weights("meso4-df"), _weights("meso4-f2f")]
    graph = build_lanes_onnx(nets, contract)
    assert faces_per_row(graph) == 1
    ref = _logits(build_onnx(nets, contract=contract), test_faces[:31])  # any batch: rows of 1
    got = _logits(graph, test_faces[:31])
    assert np.abs(got - ref).max() < 1e-4 * max(1.0, float(np.abs(ref).max()))


def test_a_bad_row_width_is_one_line() -> None:
    graph = build_onnx(_weights("meso4-df"), contract=AUTHORS)
    onnx.helper.set_model_props(graph, {FACES_KEY: "two"})
    with pytest.raises(ModelError, match=f"graph metadata {FACES_KEY}='two': expected a pos"):
        faces_per_row(graph)


def test_mesoinception_has_no_lanes(tmp_path: Path) -> None:
    inception = _weights("mesoinception4-df")
    assert not lanes_apply([inception]) and not lanes_apply([_weights("meso4-df"), inception])
    assert faces_per_row(build_onnx(inception, contract=AUTHORS)) == 1
    with pytest.raises(ModelError, match="lanes are a float32 layout of Meso-4 networks"):
        convert_to_onnx(MODELS / "MesoInception_DF.h5", tmp_path / "x.onnx", lanes=True)
    assert not (tmp_path / "x.onnx").exists()


def test_openvino_runs_meso4_in_lanes() -> None:
    graph = registry.openvino_graph(registry.get_spec("meso4-live"), progress=False)
    assert graph.name.endswith(".fp32-lanes.onnx")
    assert not registry.graph_problem(graph)  # cached and checksummed like every graph
    plain = registry.openvino_graph(registry.get_spec("mesoinception4-df"), progress=False)
    assert plain == registry.onnx_path(registry.get_spec("mesoinception4-df"), progress=False)


def test_a_cluster_ships_both_graphs() -> None:
    # cluster workers run offline with only the shipped files: OpenVINO's graph goes too
    from mesolive.commands.cluster import model_files
    from mesolive.pipeline.pipeline import PipelineConfig

    config = PipelineConfig(models=("meso4-df", "mesoinception4-df"))
    names = [path.name for kind, path in model_files(config) if kind == "graph"]
    assert [n.split(".")[0] for n in names] == ["meso4-df", "meso4-df", "mesoinception4-df"]
    assert names[1].endswith(".fp32-lanes.onnx") and names[2].endswith(".fp32.onnx")
