"""Choose and open the back end that runs a model.

``auto`` takes a matching TensorRT engine, else ONNX Runtime with its CUDA
provider where present, else ONNX Runtime on the CPU, and logs one line saying
which back end runs and, when it is not the fastest, why.
"""

from __future__ import annotations

import logging
import os

from mesolive.backends.base import Runner
from mesolive.errors import BackendUnavailable, MesoliveError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda")


def open_runner(
    model: str,
    *,
    backend: str = "auto",
    model_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    progress: bool = True,
    engine_dir: str | os.PathLike[str] | None = None,
) -> Runner:
    from mesolive.backends.onnxruntime import OnnxRuntimeRunner, available_providers
    from mesolive.models.registry import get_spec, onnx_path

    if backend not in BACKENDS:
        raise MesoliveError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    spec = get_spec(model)
    onnx_file = onnx_path(spec, "fp32", model_dir, progress=progress)

    reasons: list[str] = []
    if backend in ("auto", "tensorrt"):
        try:
            from mesolive.backends.tensorrt import open_matching_engine

            runner = open_matching_engine(spec, onnx_file, engine_dir)
            log.info("backend: TensorRT (%s)", runner.describe())
            return runner
        except (ImportError, MesoliveError) as e:
            if backend == "tensorrt":
                raise BackendUnavailable(str(e)) from e
            reasons.append(f"TensorRT not used: {e}")

    want_cuda = backend in ("auto", "onnxruntime", "onnxruntime-cuda")
    if want_cuda and "CUDAExecutionProvider" in available_providers():
        runner = OnnxRuntimeRunner(onnx_file, device="cuda", threads=threads)
        log.info("backend: ONNX Runtime CUDA%s", f" ({'; '.join(reasons)})" if reasons else "")
        return runner
    if backend == "onnxruntime-cuda":
        raise BackendUnavailable(
            "onnxruntime has no CUDA provider here; pip install onnxruntime-gpu"
        )
    if want_cuda:
        reasons.append("ONNX Runtime has no CUDA provider")
    runner = OnnxRuntimeRunner(onnx_file, device="cpu", threads=threads)
    log.info("backend: ONNX Runtime CPU%s", f" ({'; '.join(reasons)})" if reasons else "")
    return runner
