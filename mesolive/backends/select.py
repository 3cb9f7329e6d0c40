"""Choose and open the back end that runs a model.

``auto`` takes a matching TensorRT engine, else ONNX Runtime with its CUDA
provider where present (and a GPU exists), else ONNX Runtime on the CPU, and
logs one line saying which back end runs and, when it is not the fastest, why.
``triton://HOST:PORT`` sends every batch to a Triton Inference Server instead
(:mod:`mesolive.backends.triton`): nothing is converted or loaded here.

On the CPU, ``precision`` picks ONNX Runtime's graph: ``fp32``, ``int8`` (the
INT8 graph, on CPUs with VNNI/AMX), or ``auto``: INT8 where it was measured
faster and agreeing here (:mod:`mesolive.models.int8_cpu`). ``int8`` skips
TensorRT and CUDA, whose engines carry their own precision.

Call :func:`open_runner` in the thread that will run inference: a TensorRT
runner binds the CUDA context to that thread.
"""

from __future__ import annotations

import logging
import os

from mesolive.backends import BACKENDS
from mesolive.backends.base import Runner
from mesolive.errors import BackendUnavailable, MesoliveError

log = logging.getLogger(__name__)


def open_runner(
    model: str,
    *,
    backend: str = "auto",
    model_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    progress: bool = True,
    engine_dir: str | os.PathLike[str] | None = None,
    precision: str = "auto",
) -> Runner:
    from mesolive.backends.onnxruntime import OnnxRuntimeRunner, available_providers
    from mesolive.models.int8_cpu import cpu_graph
    from mesolive.models.registry import get_spec, onnx_path

    if precision == "int8" and backend not in _CPU_INT8_BACKENDS:
        raise BackendUnavailable(
            f"--precision int8 runs on the CPU (ONNX Runtime), not on {backend}; "
            "TensorRT engines take theirs from build-engine --precision"
        )
    if backend.startswith("triton://"):
        from mesolive.backends.triton import TritonRunner

        triton = TritonRunner(backend, model, size=get_spec(model).preprocess.size)
        log.info("backend: %s", triton.describe())
        return triton
    if backend not in BACKENDS:
        raise MesoliveError(
            f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)} "
            "or triton://HOST:PORT"
        )
    spec = get_spec(model)
    onnx_file = onnx_path(spec, "fp32", model_dir, progress=progress)

    reasons: list[str] = []
    gpu = precision != "int8"  # the INT8 graph is ONNX Runtime CPU's
    if gpu and backend in ("auto", "tensorrt"):
        try:
            from mesolive.backends.tensorrt import open_matching_engine

            runner = open_matching_engine(spec, onnx_file, engine_dir)
            log.info("backend: TensorRT (%s)", runner.describe())
            return runner
        except (ImportError, MesoliveError) as e:
            if backend == "tensorrt":
                if isinstance(e, BackendUnavailable):
                    raise
                raise BackendUnavailable(str(e)) from e
            reasons.append(f"TensorRT not used: {getattr(e, 'short', e)}")

    if gpu and backend in ("auto", "onnxruntime", "onnxruntime-cuda"):
        problem = _ort_cuda_problem(available_providers())
        if not problem:
            runner = OnnxRuntimeRunner(onnx_file, device="cuda", threads=threads)
            log.info("backend: ONNX Runtime CUDA%s", f" ({'; '.join(reasons)})" if reasons else "")
            return runner
        if backend == "onnxruntime-cuda":
            hint = "; pip install onnxruntime-gpu" if problem == _NO_CUDA_EP else ""
            raise BackendUnavailable(problem + hint)
        reasons.append(problem)
    graph, used, why = cpu_graph(spec, onnx_file, precision, model_dir, threads=threads)
    reasons += [why] if why else []
    runner = OnnxRuntimeRunner(graph, device="cpu", threads=threads, precision=used)
    log.info(
        "backend: ONNX Runtime CPU%s%s",
        " INT8" if used == "int8" else "",
        f" ({'; '.join(reasons)})" if reasons else "",
    )
    return runner


_CPU_INT8_BACKENDS = ("auto", "onnxruntime", "onnxruntime-cpu")


_NO_CUDA_EP = "ONNX Runtime has no CUDA provider"


def _ort_cuda_problem(providers: list[str]) -> str:
    """Why ONNX Runtime's CUDA provider cannot run here (``""``: it can)."""
    if "CUDAExecutionProvider" not in providers:
        return _NO_CUDA_EP
    from mesolive.backends.gpuinfo import probe_driver

    # onnxruntime-gpu lists its CUDA provider even with no GPU, then silently
    # runs on the CPU; say why here instead.
    driver = probe_driver()
    return "" if driver.ok else f"ONNX Runtime's CUDA provider has no GPU: {driver.error}"
