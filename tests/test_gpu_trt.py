"""TensorRT on a real GPU: build, verify, run in a worker thread, refuse other threads.

Skipped (with the reason) where there is no NVIDIA GPU, driver, tensorrt or
pycuda, as on the development machines and in CI.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mesolive.backends.gpuinfo import probe_stack

_STACK = probe_stack()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.trt,
    pytest.mark.skipif(not _STACK.ready, reason=f"no TensorRT here: {_STACK.summary(hints=False)}"),
]


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a fresh thread (as the app's inference worker does) and return its result."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
            box["error"] = e

    t = threading.Thread(target=target, name="trt-test-worker")
    t.start()
    t.join(timeout=600)
    if "error" in box:
        raise box["error"]
    return box["value"]


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An FP16 meso4-df engine for batch 1..16, built once by the real command."""
    from mesolive.cli import main

    folder = tmp_path_factory.mktemp("engines")
    argv = [
        "build-engine",
        "--model",
        "meso4-df",
        "--precision",
        "fp16",
        "--max-batch",
        "16",
        "--opt-batch",
        "4",
        "--engine-dir",
        str(folder),
    ]
    assert main(argv) == 0
    return folder


def test_build_writes_engine_sidecar_and_timing_cache(engines: Path) -> None:
    (engine,) = engines.glob("meso4-df.*.fp16.engine")
    side = json.loads(engine.with_suffix(".json").read_text())
    gpu = _STACK.gpu
    assert gpu is not None
    assert side["trt_version"] == _STACK.tensorrt.version
    assert side["compute_capability"] == f"{gpu.cc[0]}.{gpu.cc[1]}"
    assert side["profile"] == {"min": 1, "opt": 4, "max": 16}
    assert f"-{gpu.sm}.trt{_STACK.tensorrt.version}.fp16.engine" in engine.name
    assert list(engines.glob("timing.*.cache"))


def test_runner_matches_onnxruntime_and_splits_large_batches(engines: Path) -> None:
    from mesolive.backends.onnxruntime import OnnxRuntimeRunner
    from mesolive.backends.select import open_runner
    from mesolive.backends.verify import TOLERANCE
    from mesolive.models.registry import get_spec, onnx_path

    x = np.random.default_rng(0).integers(0, 256, (40, 256, 256, 3), dtype=np.uint8)  # > max 16

    def work() -> np.ndarray:
        with open_runner("meso4-df", backend="tensorrt", engine_dir=engines) as runner:
            assert runner.name == "tensorrt" and runner.max_batch == 16
            runner.warmup(1)
            return runner.infer({"input": x})["logit"][:, 0]

    got = _in_thread(work)
    with OnnxRuntimeRunner(onnx_path(get_spec("meso4-df"), "fp32")) as ref_runner:
        ref = ref_runner.infer({"input": x})["logit"][:, 0]
    scale = max(1.0, float(np.abs(ref).max()))
    assert np.abs(got - ref).max() <= TOLERANCE["fp16"] * scale


def test_runner_refuses_another_thread(engines: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mesolive.backends.cuda_ctx import WrongThread
    from mesolive.backends.select import open_runner

    # One worker thread owns the runner from creation to close, as the app's does.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="trt-owner") as owner:
        runner = owner.submit(
            open_runner, "meso4-df", backend="tensorrt", engine_dir=engines
        ).result()
        try:
            with pytest.raises(WrongThread, match="bound to the thread that created them"):
                runner.infer({"input": np.zeros((1, 256, 256, 3), np.uint8)})
            feed = {"input": np.zeros((2, 256, 256, 3), np.uint8)}
            assert owner.submit(runner.infer, feed).result()["logit"].shape == (2, 1)
        finally:
            owner.submit(runner.close).result()


def test_verify_existing_engines(engines: Path) -> None:
    from mesolive.cli import main

    assert (
        main(
            [
                "build-engine",
                "--model",
                "meso4-df",
                "--verify",
                "--engine-dir",
                str(engines),
                "--max-batch",
                "16",
                "--opt-batch",
                "4",
            ]
        )
        == 0
    )


def test_engine_of_another_tensorrt_is_refused(engines: Path, tmp_path: Path) -> None:
    from mesolive.backends.select import open_runner
    from mesolive.errors import BackendUnavailable

    (engine,) = engines.glob("meso4-df.*.fp16.engine")
    copy = tmp_path / engine.name
    copy.write_bytes(engine.read_bytes())
    side = json.loads(engine.with_suffix(".json").read_text())
    side["trt_version"] = "9.9.9.9"
    copy.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(BackendUnavailable, match=r"built with TensorRT 9\.9\.9\.9.*rebuild: "):
        _in_thread(lambda: open_runner("meso4-df", backend="tensorrt", engine_dir=tmp_path))


@pytest.mark.slow
def test_int8_engine_builds_and_verifies(shared: Path, tmp_path: Path) -> None:
    from mesolive.cli import main

    argv = [
        "build-engine",
        "--model",
        "meso4-df",
        "--precision",
        "int8",
        "--max-batch",
        "16",
        "--calibration",
        str(shared / "train" / "dfdc" / "real"),
        "--engine-dir",
        str(tmp_path),
    ]
    assert main(argv) == 0
    (engine,) = tmp_path.glob("meso4-df.*.int8.engine")
    assert engine.with_suffix(".onnx").is_file()  # the Q/DQ graph --verify compares with
