"""What build-engine's verification reports: the verdict, the other graph, each row, the cause.

The engine is played by ONNX Runtime running a graph (the ONNX Runtime runner is
real, the graphs are the authors' Meso-4 DF weights), or given as logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mesolive.backends.onnxruntime import OnnxRuntimeRunner
from mesolive.backends.verify import Verification, check_engine, verification_inputs
from mesolive.classify.preprocess import AUTHORS
from mesolive.models.keras_h5 import load_keras_weights
from mesolive.models.onnx_graph import build_onnx
from mesolive.models.quantize import int8_graph

from .conftest import H5_OF, MODELS

NAMES = ("face0", "random0", "smooth0")


@pytest.fixture(scope="module")
def graphs() -> dict[str, bytes]:
    """Meso-4 DF as float32, FP16 and INT8 Q/DQ graphs (calibrated on random images)."""
    w = load_keras_weights(MODELS / f"{H5_OF['meso4-df']}.h5")
    fp32 = build_onnx(w, contract=AUTHORS)
    _, x = verification_inputs(n_random=4, n_smooth=4)
    qdq, _ = int8_graph(fp32, lambda: iter([x]))
    return {
        "fp32": fp32.SerializeToString(),
        "fp16": build_onnx(w, "fp16", AUTHORS).SerializeToString(),
        "int8": qdq.SerializeToString(),
    }


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_an_engine_that_computes_its_graph_passes(
    graphs: dict[str, bytes], tmp_path: Path, precision: str
) -> None:
    onnx32 = tmp_path / "fp32.onnx"
    onnx32.write_bytes(graphs["fp32"])
    names, x = verification_inputs(n_random=3, n_smooth=3, seed=1)
    with OnnxRuntimeRunner(graphs[precision]) as engine:
        v = check_engine(engine, precision, onnx32, graphs[precision], names, x, None)
    assert v.passed
    computed = v.other if precision == "fp16" else v.reference  # the graph it was built from
    assert computed is not None and np.array_equal(computed, v.engine)
    lines = v.lines()
    assert lines[0].startswith(
        {
            "fp32": "vs ONNX Runtime CPU (float32 graph): ",
            "fp16": "vs ONNX Runtime CPU (float32 graph): ",
            "int8": "vs ONNX Runtime CPU (INT8 Q/DQ graph): ",
        }[precision]
    )
    assert len(lines) == {"fp32": 1, "fp16": 3, "int8": 2}[precision]
    if precision == "int8":
        assert lines[1].startswith("vs the float32 graph (information): largest logit difference")
        assert v.other is not None and np.abs(v.other - v.engine).max() > 0


def test_fp16_failure_blamed_on_fp16_rounding_when_the_fp16_graph_itself_fails() -> None:
    reference = np.array([4.0, -3.0, 0.5], np.float32)
    fp16_graph = reference + np.array([0.0, 0.0, -0.6], np.float32)  # rounding flips a row
    v = Verification(NAMES, fp16_graph.copy(), reference, "fp16", other=fp16_graph)
    assert not v.passed
    lines = v.lines()
    assert (
        "vs the FP16 graph it compiled (TensorRT's own error): largest logit difference 0 "
        in lines[1]
    )
    assert lines[-1].startswith("cause: the FP16 graph itself fails this check in ONNX Runtime")
    header, *rows = lines[3:-1]
    assert header.split() == [
        "row",
        "float32",
        "graph",
        "FP16",
        "graph",
        "engine",
        "engine",
        "-",
        "float32",
        "engine",
        "-",
        "FP16",
    ]
    assert rows[0].split() == ["face0", "4.00000", "4.00000", "4.00000", "0.00000", "0.00000"]
    assert rows[2].endswith("-0.60000           0.00000  over the tolerance, decision flips")


def test_fp16_failure_blamed_on_tensorrt_when_the_fp16_graph_passes() -> None:
    reference = np.array([4.0, -3.0, 0.5], np.float32)
    v = Verification(NAMES, reference + 0.2, reference, "fp16", other=reference)
    assert v.lines()[-1].startswith("cause: the FP16 graph passes this check in ONNX Runtime")


@pytest.mark.parametrize(
    ("precision", "other", "columns"),
    [
        ("fp32", None, ["row", "float32", "graph", "engine", "engine", "-", "float32"]),
        (
            "int8",
            np.zeros(3, np.float32),
            [
                "row",
                "INT8",
                "Q/DQ",
                "graph",
                "float32",
                "graph",
                "engine",
                "engine",
                "-",
                "INT8",
                "engine",
                "-",
                "float32",
            ],
        ),
    ],
)
def test_a_failure_lists_every_row(
    precision: str, other: np.ndarray | None, columns: list[str]
) -> None:
    reference = np.array([4.0, -3.0, 0.001], np.float32)
    engine = np.array([4.0, -2.0, -0.001], np.float32)  # one row over; one flips, but near 0
    lines = Verification(NAMES, engine, reference, precision, other=other).lines()
    table = lines[1 + (other is not None) :]
    assert table[0].split() == columns
    assert [r.split()[0] for r in table[1:]] == list(NAMES)
    marks = [
        " ".join(w for w in r.split()[1:] if not w.lstrip("-")[:1].isdigit()) for r in table[1:]
    ]
    assert marks == ["", "over the tolerance", ""]
    assert not any("cause" in ln for ln in lines)
