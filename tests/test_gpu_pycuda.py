"""The TensorRT runner's CUDA side on a real GPU, through the real pycuda.

TensorRT cannot be installed on any machine here, but pycuda builds wherever the
CUDA toolkit is (a lent GPU machine). There these tests run the runner's own
page-locked buffers, device memory, two streams, events and primary context for
real, under the stand-in ``tensorrt`` of ``tests/gpu_stack``: its engine runs the
ONNX graph in ONNX Runtime, reading its input from and writing its outputs to the
GPU's memory through pycuda. Skipped where pycuda or an NVIDIA GPU is missing.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from mesolive.backends import engine_cache as ec
from mesolive.backends import trt_build
from mesolive.backends.cuda_ctx import PrimaryContext, WrongThread
from mesolive.backends.gpuinfo import probe_driver
from mesolive.backends.onnxruntime import OnnxRuntimeRunner
from mesolive.backends.tensorrt import open_engine
from mesolive.models.onnx_graph import INPUT_NAME, LOGIT_NAME
from mesolive.models.registry import default_model, get_spec, onnx_path

from .gpu_fakes import GPU_STACK

cuda = pytest.importorskip("pycuda.driver", reason="pycuda is not installed")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not probe_driver().ok, reason="no NVIDIA GPU with a CUDA driver"),
]
MODEL = default_model()


@pytest.fixture
def trt(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The stand-in ``tensorrt`` beside the real ``pycuda.driver`` (imported first)."""
    assert not Path(cuda.__file__).is_relative_to(GPU_STACK), cuda.__file__
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    del sys.modules["tensorrt"]
    monkeypatch.syspath_prepend(str(GPU_STACK))
    module = importlib.import_module("tensorrt")
    assert Path(module.__file__).is_relative_to(GPU_STACK), module.__file__
    trt_build.make_logger.cache_clear()
    yield module
    trt_build.make_logger.cache_clear()


def _graph() -> bytes:
    return onnx_path(get_spec(MODEL), "fp32").read_bytes()


def _engine(trt: ModuleType, folder: Path, max_batch: int) -> Path:
    side = ec.Sidecar(
        model=MODEL,
        onnx_sha256="1a2b3c4d" + "0" * 56,
        trt_version=trt.__version__,
        gpu_name=cuda.Device(0).name(),
        compute_capability="9.0",
        precision="fp32",
        profile={"min": 1, "opt": max_batch, "max": max_batch},
    )
    path = folder / "engine.plan"
    ec.write_engine(path, trt.plan(_graph(), 1, max_batch), side)
    return path


def _faces(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, (n, 256, 256, 3), dtype=np.uint8)


def _in_thread(work: Callable[[], Any]) -> Any:
    """``work()`` in a thread of its own, as the pipeline's inference worker runs it."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = work()
        except BaseException as e:  # noqa: BLE001 - raised again in the test's thread
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=120)
    assert not t.is_alive()
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_chunks_and_both_input_buffers_give_the_graphs_logits(
    trt: ModuleType, tmp_path: Path
) -> None:
    """Five faces through a 2-face engine (three chunks over both slots), then faces cut
    straight into the page-locked input buffer, each slot in turn."""
    engine = _engine(trt, tmp_path, max_batch=2)
    x = _faces(5)
    with OnnxRuntimeRunner(_graph()) as reference:
        want = reference.infer({INPUT_NAME: x})[LOGIT_NAME]

    def work() -> list[np.ndarray]:
        with open_engine(engine) as runner:
            got = [runner.infer({INPUT_NAME: x})[LOGIT_NAME]]
            for _ in range(3):
                buffer = runner.input_buffer(2)
                buffer[...] = x[:2]
                got.append(runner.infer({INPUT_NAME: buffer})[LOGIT_NAME])
            return got

    whole, *buffered = _in_thread(work)
    np.testing.assert_allclose(whole, want, rtol=1e-6)
    for got in buffered:
        np.testing.assert_array_equal(got, whole[:2])


def test_closing_frees_the_gpu_memory_and_leaves_no_context_current(
    trt: ModuleType, tmp_path: Path
) -> None:
    engine = _engine(trt, tmp_path, max_batch=64)

    def work() -> tuple[int, int, object]:
        held = PrimaryContext()  # keeps the primary context alive between runners
        try:
            with held:
                before = cuda.mem_get_info()[0]
            for _ in range(3):
                with open_engine(engine) as runner:
                    runner.infer({INPUT_NAME: _faces(64)})
            with held:
                after = cuda.mem_get_info()[0]
            return before, after, cuda.Context.get_current()
        finally:
            held.release()

    before, after, current = _in_thread(work)
    assert current is None, "a CUDA context was left current"
    assert before - after < 4 << 20, f"{(before - after) >> 20} MiB of GPU memory not freed"


def test_a_runner_used_from_another_thread_says_so(trt: ModuleType, tmp_path: Path) -> None:
    engine = _engine(trt, tmp_path, max_batch=2)
    runner = open_engine(engine)
    try:
        with pytest.raises(WrongThread, match="create, use and close a TensorRT runner"):
            _in_thread(lambda: runner.infer({INPUT_NAME: _faces(1)}))
    finally:
        runner.close()
