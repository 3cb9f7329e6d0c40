"""The TensorRT runner when TensorRT cannot load an engine or has no memory to run it.

TensorRT and pycuda cannot run here: ``tests/gpu_stack`` stands in for them
(its docstrings cite the TensorRT and pycuda sources it follows). Engines and
sidecars are real files; the command-line test runs mesolive in a subprocess
with the stand-ins and a compiled stand-in ``libcuda.so.1``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from mesolive.backends import engine_cache as ec
from mesolive.backends import trt_build
from mesolive.backends.onnxruntime import OnnxRuntimeRunner
from mesolive.backends.tensorrt import open_engine
from mesolive.errors import BackendUnavailable, EngineIncompatible
from mesolive.models.onnx_graph import INPUT_NAME, LOGIT_NAME
from mesolive.models.registry import default_model

from .gpu_fakes import CPU_FP32, GPU_STACK, fake_libcuda, run_mesolive

MODEL = default_model()
FACE = "samples/faces/real/real00240.jpg"


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, ModuleType]]:
    from .gpu_fakes import import_gpu_stack

    trt_build.make_logger.cache_clear()
    trt, driver = import_gpu_stack(monkeypatch)
    yield trt, driver
    assert driver.STACK == [], "a CUDA context was left pushed"
    assert driver.RETAINED == [], "the primary context was not released"
    assert driver.MEMORY == {}, "device memory was not freed"
    trt_build.make_logger.cache_clear()


def _graph() -> bytes:
    from mesolive.models.registry import get_spec, onnx_path

    return onnx_path(get_spec(MODEL), "fp32").read_bytes()


def _side(max_batch: int = 64) -> ec.Sidecar:
    return ec.Sidecar(
        model=MODEL,
        onnx_sha256="1a2b3c4d" + "0" * 56,
        trt_version="10.8.0.43",
        gpu_name="NVIDIA Fake GPU 9000",
        compute_capability="8.9",
        precision="fp16",
        profile={"min": 1, "opt": 8, "max": max_batch},
    )


def _engine(folder: Path, plan: bytes, side: ec.Sidecar | None) -> Path:
    path = folder / ec.engine_name(
        MODEL, "1a2b3c4d" + "0" * 56, "NVIDIA Fake GPU 9000", (8, 9), "10.8.0.43", "fp16"
    )
    if side is None:
        path.write_bytes(plan)
    else:
        ec.write_engine(path, plan, side)
    return path


def test_an_engine_runs_in_chunks_of_its_largest_batch(
    stack: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    """The stand-ins run the graph the engine was built from: the runner gives its logits."""
    trt, driver = stack
    engine = _engine(tmp_path, trt.plan(_graph(), 1, 2), _side(2))
    x = _faces(5)
    with open_engine(engine) as runner, OnnxRuntimeRunner(_graph()) as reference:
        assert runner.max_batch == 2
        assert runner.input_specs[0].dtype == np.uint8  # the graph's uint8 crops
        driver.CALLS.clear()
        got = runner.infer({INPUT_NAME: x})[LOGIT_NAME]
        calls = list(driver.CALLS)
        want = reference.infer({INPUT_NAME: x})[LOGIT_NAME]
        with pytest.raises(ValueError, match=r"input must be \(N, 256, 256, 3\) uint8"):
            runner.infer({INPUT_NAME: x.astype(np.float32)})
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # Double buffering: every chunk's copy goes to a stream of its own, and the
    # host waits for a chunk's outputs only once the next chunk is on its way.
    (copy,) = {stream for what, stream, _ in calls if what == "htod"}
    (compute,) = {stream for what, stream, _ in calls if what == "execute"}
    assert copy != compute
    what = [w for w, _, _ in calls]
    assert what.count("execute") == 3
    # the events recorded after a chunk's outputs were enqueued say they are back
    done = {calls[i + 1][2] for i, w in enumerate(what) if w == "dtoh" and what[i + 1] == "record"}
    read = [i for i, (w, _, e) in enumerate(calls) if w == "event.synchronize" and e in done]
    copies = [i for i, w in enumerate(what) if w == "htod"]
    assert len(read) == 3 and copies[1] < read[0] and copies[2] < read[1]


def _faces(n: int) -> np.ndarray:
    """``n`` random (256, 256, 3) uint8 crops: what the engines read."""
    return np.random.default_rng(n).integers(0, 256, (n, 256, 256, 3), dtype=np.uint8)


def test_faces_written_into_the_input_buffer_need_no_host_copy(
    stack: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    """The pipeline cuts into ``input_buffer``: the page-locked memory the copy reads."""
    trt, driver = stack
    engine = _engine(tmp_path, trt.plan(_graph(), 1, 4), _side(4))
    x = _faces(3)
    with open_engine(engine) as runner:
        want = runner.infer({INPUT_NAME: x})[LOGIT_NAME]
        for _ in range(3):  # each of the two buffers in turn
            buffer = runner.input_buffer(3)
            buffer[...] = x
            driver.CALLS.clear()
            got = runner.infer({INPUT_NAME: buffer})[LOGIT_NAME]
            np.testing.assert_array_equal(got, want)
            # the only wait is for the outputs: no copy into the buffer had to wait
            assert [w for w, _, _ in driver.CALLS].count("event.synchronize") == 1
        driver.CALLS.clear()
        runner.infer({INPUT_NAME: x})  # from an array of its own: copied in, after a wait
        assert [w for w, _, _ in driver.CALLS].count("event.synchronize") == 2
        assert runner.input_buffer(5).shape == (5, 256, 256, 3)  # larger than one chunk


@pytest.mark.parametrize(
    ("side", "rebuild"),
    [
        (
            _side(),
            f"rebuild: mesolive build-engine --model {MODEL} --precision fp16 --engine-dir {{}} "
            "--force",
        ),
        (None, "rebuild: mesolive build-engine --force"),
    ],
)
def test_an_engine_tensorrt_cannot_load_is_one_line_with_the_rebuild_command(
    stack: tuple[ModuleType, ModuleType],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    side: ec.Sidecar | None,
    rebuild: str,
) -> None:
    engine = _engine(tmp_path, b"not a plan", side)
    with pytest.raises(EngineIncompatible) as err:
        open_engine(engine)
    assert str(err.value) == (
        f"{engine}: TensorRT cannot load this engine (a damaged file, or built by another "
        "TensorRT or for another GPU; see the TensorRT error above); " + rebuild.format(tmp_path)
    )
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("Serialization" in m for m in errors), errors  # TensorRT's own line, above


@pytest.mark.parametrize(
    ("max_batch", "smaller"), [(64, "--max-batch 32"), (8, "--max-batch 4 --opt-batch 4")]
)
def test_too_little_gpu_memory_for_a_context_says_so_and_what_to_do(
    stack: tuple[ModuleType, ModuleType],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    max_batch: int,
    smaller: str,
) -> None:
    trt, _ = stack
    trt.FREE_DEVICE_MEMORY = trt.CONTEXT_MEMORY - 1
    engine = _engine(tmp_path, trt.plan(_graph()), None)  # no sidecar file: given
    with pytest.raises(BackendUnavailable) as err:
        open_engine(engine, sidecar=_side(max_batch))
    assert str(err.value) == (
        f"{engine.name}: TensorRT could not create an execution context: too little free GPU "
        "memory (see the TensorRT error above); close other programs on the GPU (nvidia-smi "
        "lists them) or rebuild with a smaller --max-batch: mesolive build-engine --model "
        f"{MODEL} --precision fp16 {smaller} --engine-dir {tmp_path}"
    )
    assert "Error Code 2: OutOfMemory" in caplog.text


def test_no_memory_for_a_context_falls_back_or_fails_in_one_line(
    tmp_path: Path, shared: Path
) -> None:
    """Through the command line, as a user meets it: auto falls back, --backend tensorrt stops."""
    from mesolive.models.download import sha256_file
    from mesolive.models.registry import get_spec, onnx_path

    libdir = fake_libcuda(tmp_path / "libcuda")
    if libdir is None:
        pytest.skip("needs a C compiler (cc) on Linux to build the stand-in libcuda.so.1")
    sha = sha256_file(onnx_path(get_spec(MODEL), "fp32"))
    engines = tmp_path / "engines"
    side = ec.Sidecar(**{**_side().__dict__, "onnx_sha256": sha})
    engine = engines / ec.engine_name(MODEL, sha, side.gpu_name, (8, 9), side.trt_version, "fp16")
    ec.write_engine(engine, b"FAKE-TRT-PLAN:1,64:" + _graph(), side)
    env = {"MESOLIVE_ENGINE_DIR": str(engines), "FAKE_TRT_FREE_MEMORY": "0"}
    face = str(shared / FACE)

    auto = run_mesolive(
        ["classify", face, *CPU_FP32], pythonpath=[GPU_STACK], libdir=libdir, env=env
    )
    assert auto.returncode == 0, auto.stderr
    (line,) = [ln for ln in auto.stderr.splitlines() if "backend:" in ln]
    assert line.startswith(
        f"mesolive: backend: ONNX Runtime CPU (TensorRT not used: {engine.name}: TensorRT could "
        "not create an execution context: too little free GPU memory"
    )

    trt = run_mesolive(
        ["classify", "--backend", "tensorrt", face], pythonpath=[GPU_STACK], libdir=libdir, env=env
    )
    assert trt.returncode == 2
    assert "Traceback" not in trt.stderr
    last = trt.stderr.strip().splitlines()[-1]
    assert last.startswith(f"mesolive: error: {engine.name}: TensorRT could not create an")
    assert "--max-batch 32" in last
