"""INT8 on the CPU: the graph ONNX Runtime runs in integers, its cache, and --precision."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from mesolive.backends import cpuinfo
from mesolive.backends.onnxruntime import OnnxRuntimeRunner
from mesolive.backends.select import open_runner
from mesolive.backends.verify import logits
from mesolive.classify.preprocess import AUTHORS
from mesolive.errors import BackendUnavailable, InputError
from mesolive.models import cpu_precision, registry
from mesolive.models.keras_h5 import load_keras_weights
from mesolive.models.onnx_graph import build_onnx, image_ranges
from mesolive.models.quantize import bn_scale_into_convolutions, int8_graph

from .conftest import MODELS, mesolive, training_pixels

VNNI = bool(cpuinfo.int8_flags())
needs_vnni = pytest.mark.skipif(not VNNI, reason="this CPU has no VNNI/AMX: INT8 is not run here")


@pytest.fixture(scope="module")
def calibration_batch(shared: Path) -> np.ndarray:
    return training_pixels(shared, 24)


def _batches(x: np.ndarray) -> Iterator[np.ndarray]:
    return (x[i : i + 16] for i in range(0, len(x), 16))


@pytest.mark.parametrize(("name", "h5"), [("meso4-df", "Meso4_DF"), ("mi4", "MesoInception_DF")])
def test_cpu_graph_keeps_the_decisions(
    name: str, h5: str, calibration_batch: np.ndarray, test_faces: np.ndarray
) -> None:
    model = build_onnx(load_keras_weights(MODELS / f"{h5}.h5"), contract=AUTHORS)
    q, cal = int8_graph(model, lambda: _batches(calibration_batch), target="cpu")
    assert cal.images == 48
    with (
        OnnxRuntimeRunner(model.SerializeToString()) as fp32,
        OnnxRuntimeRunner(q.SerializeToString()) as int8,
    ):
        ref, got = logits(fp32, test_faces, 64), logits(int8, test_faces, 64)
    assert np.array_equal(ref[:4] > 0, got[:4] > 0)  # the authors' samples
    # Measured on these 124 faces: 1 flip (Meso-4), 0 (MesoInception-4); correlation 0.99+.
    assert np.mean((ref > 0) != (got > 0)) <= 0.025
    assert np.corrcoef(ref, got)[0, 1] >= 0.98


def test_cpu_graph_runs_wide_convolutions_on_uint8(calibration_batch: np.ndarray) -> None:
    model = build_onnx(load_keras_weights(MODELS / "Meso4_DF.h5"), contract=AUTHORS)
    q, cal = int8_graph(model, lambda: _batches(calibration_batch[:16]), target="cpu")
    made_by = {o: n for n in q.graph.node for o in n.output}
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    convs = [n for n in q.graph.node if n.op_type == "Conv"]
    assert len(convs) == 4
    assert convs[0].input[0] in image_ranges(q)  # 3 channels: stays float (slower in integers)
    for conv in convs[1:]:
        x_dq, w_dq, b_dq = (made_by[i] for i in conv.input)
        assert {x_dq.op_type, w_dq.op_type, b_dq.op_type} == {"DequantizeLinear"}
        assert made_by[x_dq.input[0]].op_type == "QuantizeLinear"
        assert inits[x_dq.input[2]].dtype == np.uint8
        assert inits[w_dq.input[0]].dtype == np.int8 and inits[b_dq.input[0]].dtype == np.int32
        # the ReLU's output is quantized with zero point 0: ONNX Runtime drops the ReLU
        relu = next(n for n in q.graph.node if n.input and n.input[0] == conv.output[0])
        q_node = next(n for n in q.graph.node if n.input and n.input[0] == relu.output[0])
        assert q_node.op_type == "QuantizeLinear" and inits[q_node.input[2]] == 0
    pools = [n for n in q.graph.node if n.op_type in ("MaxPool", "ReduceMax")]
    assert all(made_by[p.input[0]].op_type in ("QuantizeLinear", "Reshape") for p in pools[1:])
    assert all(cal.low[t] == 0.0 for t in cal.low if made_by[t].op_type == "Relu")
    assert [o.name for o in q.graph.output] == ["logit", "p_real"]
    onnx.checker.check_model(q)


def test_batchnorm_scale_moves_into_the_convolutions_exactly(test_faces: np.ndarray) -> None:
    """What the CPU's INT8 graph rounds after a convolution is in the next layer's units."""
    model = build_onnx(load_keras_weights(MODELS / "Meso4_F2F.h5"), contract=AUTHORS)
    moved = bn_scale_into_convolutions(model)
    inits = {i.name: numpy_helper.to_array(i) for i in moved.graph.initializer}
    bns = [n for n in moved.graph.node if n.op_type == "BatchNormalization"]
    assert len(bns) == 4
    for bn in bns:  # every BatchNorm of Meso-4 follows a convolution: none scales any more
        gamma, var = inits[bn.input[1]], inits[bn.input[4]]
        np.testing.assert_allclose(gamma / np.sqrt(var + 1e-3), 1.0, rtol=1e-6)
    with (
        OnnxRuntimeRunner(model.SerializeToString()) as a,
        OnnxRuntimeRunner(moved.SerializeToString()) as b,
    ):
        ref, got = logits(a, test_faces, 64), logits(b, test_faces, 64)
    assert np.abs(got - ref).max() <= 1e-5 * max(1.0, float(np.abs(ref).max()))


def test_verdict_decides_auto() -> None:
    good = cpu_precision.Verdict(
        held_out=256, flipped=5, fp32_faces_per_s=500, faces_per_s=600, speedup=1.2
    )
    assert good.why_not() == ""
    flips = cpu_precision.Verdict(256, 6, 500, 600, 1.2)
    assert "flips 6 of 256" in flips.why_not()
    slow = cpu_precision.Verdict(256, 0, 500, 520, 1.04)
    assert "x1.04" in slow.why_not()


def test_int8_flags_read_from_cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx_vnni avx512_vnni amx_int8\n")
    monkeypatch.setattr(cpuinfo, "CPUINFO", fake)
    assert cpuinfo.int8_flags() == ("amx_int8", "avx512_vnni", "avx_vnni")
    fake.write_text("flags\t\t: fpu sse avx2 avx512f\n")
    assert cpuinfo.int8_flags() == ()
    monkeypatch.setattr(cpuinfo, "CPUINFO", tmp_path / "missing")
    assert cpuinfo.int8_flags() == ()


def test_precision_without_vnni(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpuinfo, "int8_flags", lambda: ())
    spec = registry.get_spec("meso4-df")
    fp32 = registry.onnx_path(spec, "fp32", progress=False)
    assert cpu_precision.cpu_graph(spec, fp32, "fp32") == (fp32, "fp32", "")
    assert cpu_precision.cpu_graph(spec, fp32, "auto") == (fp32, "fp32", "")
    with pytest.raises(BackendUnavailable, match="has none of"):
        cpu_precision.cpu_graph(spec, fp32, "int8")


@needs_vnni
def test_int8_needs_calibration_crops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cpu_precision.CALIBRATION_ENV, raising=False)
    spec = registry.get_spec("meso4-df")
    fp32 = registry.onnx_path(spec, "fp32", progress=False)
    with pytest.raises(InputError, match=cpu_precision.CALIBRATION_ENV):
        cpu_precision.cpu_graph(spec, fp32, "int8")
    assert cpu_precision.cpu_graph(spec, fp32, "auto") == (fp32, "fp32", "")


@needs_vnni
def test_int8_graph_is_cached_with_a_checksum(
    calibration_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = registry.get_spec("meso4-df")
    fp32 = registry.onnx_path(spec, "fp32", progress=False)
    path, verdict = cpu_precision.int8_graph_path(spec, fp32)
    assert path.parent == fp32.parent and ".int8cpu-" in path.name
    assert registry.graph_problem(path) == ""
    assert verdict.held_out == 24 and verdict.calibration["images"] == 24
    # cached: the same file, not built again
    with monkeypatch.context() as m:
        m.setattr(cpu_precision, "_compare", lambda *a: pytest.fail("rebuilt a cached graph"))
        assert cpu_precision.int8_graph_path(spec, fp32) == (path, verdict)
    # a damaged graph fails its checksum and is rebuilt
    path.write_bytes(path.read_bytes()[:-10])
    again, _ = cpu_precision.int8_graph_path(spec, fp32)
    assert again == path and registry.graph_problem(path) == ""
    # other crops, another graph
    next(calibration_folder.glob("*.jpg")).unlink()
    other, _ = cpu_precision.int8_graph_path(spec, fp32)
    assert other != path


@needs_vnni
def test_open_runner_precision(calibration_folder: Path) -> None:
    with open_runner("meso4-df", backend="onnxruntime-cpu", precision="int8") as r:
        assert r.name == "onnxruntime-cpu-int8"
    with open_runner("meso4-df", precision="fp32") as r:
        assert r.name == "onnxruntime-cpu"
    with pytest.raises(BackendUnavailable, match="runs in ONNX Runtime on the CPU"):
        open_runner("meso4-df", backend="tensorrt", precision="int8")


@needs_vnni
def test_cli_precision_reaches_the_runner(calibration_folder: Path, shared: Path) -> None:
    samples = str(shared / "samples" / "faces")
    env = {cpu_precision.CALIBRATION_ENV: str(calibration_folder)}
    for precision, label in (("int8", "ONNX Runtime CPU INT8"), ("fp32", "ONNX Runtime CPU")):
        proc = mesolive(
            "classify", samples, "--model", "meso4-df", "--backend", "onnxruntime-cpu",
            "--precision", precision, env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert f"mesolive: backend: {label}\n" in proc.stderr
    proc = mesolive("classify", samples, "--precision", "int8", "--backend", "tensorrt", env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "mesolive: error: --precision int8 runs in ONNX Runtime on the CPU, not in --backend "
        "tensorrt; TensorRT engines take theirs from build-engine --precision"
    ]


def test_precision_option_of_every_verb_that_classifies() -> None:
    from mesolive.cli import build_parser
    from mesolive.commands.evaluate import pipeline_config
    from mesolive.commands.scan import config_from_args

    parser = build_parser()
    for argv in (["classify", "x"], ["evaluate", "x"], ["scan", "x"]):
        assert parser.parse_args(argv).precision == "auto"
        assert parser.parse_args([*argv, "--precision", "int8"]).precision == "int8"
    assert config_from_args(parser.parse_args(["scan", "x", "--precision", "fp32"])).precision == (
        "fp32"
    )
    args = parser.parse_args(["evaluate", "x", "--precision", "int8"])
    args.model = "meso4-df"
    assert pipeline_config(args).precision == "int8"
    with pytest.raises(SystemExit):
        parser.parse_args(["classify", "x", "--precision", "fp16"])


def test_verdicts_written_before_bf16_are_still_read(tmp_path: Path) -> None:
    old = tmp_path / "old.verdict.json"
    old.write_text(
        '{"held_out": 256, "flipped": 3, "fp32_faces_per_s": 500.0, "int8_faces_per_s": 600.0,'
        ' "speedup": 1.2, "calibration": {}, "cpu_flags": ["avx512_vnni"]}'
    )
    assert cpu_precision._read_verdict(old) == cpu_precision.Verdict(
        256, 3, 500.0, 600.0, 1.2, "int8", {}, ("avx512_vnni",)
    )
