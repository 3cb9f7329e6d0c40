"""Unions of models: one graph whose face is as fake as its most suspicious network."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from mesolive.backends.onnxruntime import OnnxRuntimeRunner
from mesolive.classify.preprocess import AUTHORS
from mesolive.errors import ModelError
from mesolive.models import registry
from mesolive.models.keras_h5 import load_keras_weights
from mesolive.models.onnx_graph import build_onnx

from .conftest import H5_OF, MODELS

MEMBERS = ("meso4-df", "meso4-f2f", "mesoinception4-df")


def test_union_graph_takes_the_smallest_logit(golden: dict[str, np.ndarray]) -> None:
    """Each network's logit is the authors' (golden); the union's is their minimum."""
    nets = [load_keras_weights(MODELS / f"{H5_OF[n]}.h5") for n in MEMBERS]
    with OnnxRuntimeRunner(build_onnx(nets, contract=AUTHORS).SerializeToString()) as runner:
        out = runner.infer({"input": golden["images_u8"][..., ::-1]})
    refs = np.stack([golden[f"{H5_OF[n]}_logit"] for n in MEMBERS])
    assert np.abs(out["logit"][:, 0] - refs.min(axis=0)).max() < 1e-4
    # the rows really differ in which network decides, so the test can tell min from any one
    assert len(set(refs.argmin(axis=0).tolist())) == len(MEMBERS)
    fake = 1 - out["p_real"][:, 0]
    np.testing.assert_allclose(fake, (1 - 1 / (1 + np.exp(-refs))).max(axis=0), atol=1e-5)


def test_union_fp16_graph_is_float16_inside(golden: dict[str, np.ndarray]) -> None:
    nets = [load_keras_weights(MODELS / f"{H5_OF[n]}.h5") for n in MEMBERS[:2]]
    fp16 = build_onnx(nets, "fp16", AUTHORS)
    # every weight is float16; the int64 tensors are the shapes of the folded pools
    types = {i.data_type for i in fp16.graph.initializer}
    assert types - {onnx.TensorProto.INT64} == {onnx.TensorProto.FLOAT16}
    with OnnxRuntimeRunner(fp16.SerializeToString()) as runner:
        logits = runner.infer({"input": golden["images_u8"][..., ::-1]})["logit"][:, 0]
    ref = np.stack([golden[f"{H5_OF[n]}_logit"] for n in MEMBERS[:2]]).min(axis=0)
    assert np.array_equal(logits > 0, ref > 0)


def test_a_single_network_graph_is_unchanged_by_the_union_code() -> None:
    """One network gives the graph it always gave (cached ONNX stays valid)."""
    w = load_keras_weights(MODELS / "Meso4_DF.h5")
    assert build_onnx(w).SerializeToString() == build_onnx([w]).SerializeToString()
    assert not any(n.op_type == "Min" for n in build_onnx(w).graph.node)


def test_plus_names_a_union_anywhere_a_model_is_named() -> None:
    spec = registry.get_spec("meso4-df+meso4-f2f")
    assert spec.union == ("meso4-f2f",)
    assert [n.name for n in registry.networks(spec)] == ["meso4-df", "meso4-f2f"]
    # the same network twice is one network
    assert [n.name for n in registry.networks(registry.get_spec("meso4-df+meso4-df"))] == [
        "meso4-df"
    ]
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        registry.get_spec("meso4-df+nope")


def test_union_onnx_is_cached_apart_from_its_members() -> None:
    single = registry.onnx_path(registry.get_spec("meso4-df"))
    union = registry.onnx_path(registry.get_spec("meso4-df+meso4-f2f"))
    assert single != union
    assert sum(n.op_type == "Min" for n in onnx.load(str(union)).graph.node) == 1
    assert registry.onnx_path(registry.get_spec("meso4-df+meso4-f2f")) == union


def test_int8_graph_of_a_union_keeps_its_decisions(shared: Path) -> None:
    """build-engine's INT8 path (equalisation, then Q/DQ) works on a union's graph too."""
    from mesolive.imageio import expand_paths, read_image
    from mesolive.models.quantize import int8_graph

    samples, _ = expand_paths([shared / "samples" / "faces"])
    calib, _ = expand_paths([shared / "faces" / "dfdc"])
    x = AUTHORS.pixels([read_image(f) for f in samples + calib[::20]])
    fp32 = onnx.load(str(registry.onnx_path(registry.get_spec("meso4-df+meso4-f2f"))))
    graph, _ = int8_graph(fp32, lambda: [x], threads=1)
    assert any(n.op_type == "QuantizeLinear" for n in graph.graph.node)
    with (
        OnnxRuntimeRunner(fp32.SerializeToString()) as a,
        OnnxRuntimeRunner(graph.SerializeToString()) as b,
    ):
        ref = a.infer({"input": x[:4]})["logit"][:, 0]
        q = b.infer({"input": x[:4]})["logit"][:, 0]
    assert np.array_equal(q > 0, ref > 0)


def _classify(shared: Path, model: str) -> subprocess.CompletedProcess[str]:
    faces = str(shared / "samples" / "faces")
    return subprocess.run(
        [sys.executable, "-m", "mesolive", "classify", faces, "--model", model, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_classify_with_a_union_on_the_command_line(shared: Path) -> None:
    def fake_scores(model: str) -> dict[str, float]:
        proc = _classify(shared, model)
        assert proc.returncode == 0, proc.stderr
        return {Path(r["path"]).name: r["fake_score"] for r in json.loads(proc.stdout)}

    a, b = fake_scores("meso4-df"), fake_scores("meso4-f2f")
    both = fake_scores("meso4-df+meso4-f2f")
    for name, score in both.items():
        assert score == pytest.approx(max(a[name], b[name]), abs=1e-4)
    bad = _classify(shared, "meso4-df+nope")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "mesolive: error: unknown model 'nope'; known models: "
        + ", ".join(s.name for s in registry.list_specs())
    ]
