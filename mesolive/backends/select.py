"""Choose and open the back end that runs a model.

``auto`` takes a matching TensorRT engine, else ONNX Runtime with its CUDA
provider where present (and a GPU exists), else ONNX Runtime on the CPU, and
logs one line saying which back end runs and, when it is not the fastest, why.
``triton://HOST:PORT`` sends every batch to a Triton Inference Server instead
(:mod:`mesolive.backends.triton`): nothing is converted or loaded here.

On the CPU, ``precision`` picks the graph and its runtime: ``fp32`` (ONNX
Runtime's float32 graph), ``int8`` (ONNX Runtime's INT8 graph, on CPUs with
VNNI/AMX), ``bf16`` (OpenVINO running the float32 graph in bfloat16, on CPUs
with AMX or AVX-512 BF16, where OpenVINO is installed), or ``auto``: the
fastest of those measured faster and agreeing here
(:mod:`mesolive.models.cpu_precision`), else float32; under ``--backend
auto`` that includes float32 computed by the C kernel built here for
MesoInception-4's inception blocks (:mod:`mesolive.backends.native`). ``int8`` and ``bf16``
skip TensorRT and CUDA, whose engines carry their own precision.
``openvino`` runs the float32 graph with OpenVINO (``auto``: in bfloat16
where that qualifies).

Call :func:`open_runner` in the thread that will run inference: a TensorRT
runner binds the CUDA context to that thread.
"""

from __future__ import annotations

import logging
import os

from mesolive.backends import BACKENDS, RUNNER_LABELS
from mesolive.backends.base import Runner
from mesolive.errors import BackendUnavailable, MesoliveError
from mesolive.signals import interrupted_import

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
    from mesolive.models.cpu_precision import cpu_graph
    from mesolive.models.registry import get_spec, onnx_path, openvino_graph

    runtime = _CPU_PRECISIONS.get(precision)
    if runtime and backend not in ("auto", *_CPU_BACKENDS[runtime]):
        engines = (
            "; TensorRT engines take theirs from build-engine --precision"
            if backend in ("tensorrt", "onnxruntime-cuda") or backend.startswith("triton://")
            else ""
        )
        raise BackendUnavailable(
            f"--precision {precision} runs in {runtime} on the CPU, not in --backend {backend}"
            f"{engines}"
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

    if backend == "openvino":
        from mesolive.backends.openvino import OpenVinoRunner

        _, used, why = cpu_graph(
            spec, onnx_file, precision, model_dir, threads=threads, paths=("bf16",)
        )
        graph = openvino_graph(spec, model_dir, progress=progress)
        runner = OpenVinoRunner(graph, threads=threads, precision=used)
        log.info("backend: %s%s", RUNNER_LABELS[runner.name], f" ({why})" if why else "")
        return runner

    reasons: list[str] = []
    gpu = runtime is None  # INT8 and bfloat16 are the CPU's
    if gpu and backend in ("auto", "tensorrt"):
        try:
            from mesolive.backends.tensorrt import open_matching_engine

            runner = open_matching_engine(spec, onnx_file, engine_dir)
            log.info("backend: TensorRT (%s)", runner.describe())
            return runner
        except (ImportError, MesoliveError) as e:
            interrupted_import(e)  # Ctrl+C pressed as TensorRT loaded
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
    paths = ("int8", "bf16", "native") if backend == "auto" else ("int8",)
    graph, used, why = cpu_graph(
        spec, onnx_file, precision, model_dir, threads=threads, paths=paths
    )
    reasons += [why] if why else []
    if used == "bf16":
        from mesolive.backends.openvino import OpenVinoRunner

        runner = OpenVinoRunner(graph, threads=threads, precision="bf16")
    elif used == "native":
        from mesolive.backends.native import open_native

        runner = open_native(spec, model_dir, threads=threads)
    else:
        runner = OnnxRuntimeRunner(graph, device="cpu", threads=threads, precision=used)
    log.info(
        "backend: %s%s",
        RUNNER_LABELS[runner.name],
        f" ({'; '.join(reasons)})" if reasons else "",
    )
    return runner


_CPU_PRECISIONS = {"int8": "ONNX Runtime", "bf16": "OpenVINO"}
"""The reduced precisions that run only on the CPU, and the runtime that runs each."""

_CPU_BACKENDS = {"ONNX Runtime": ("onnxruntime", "onnxruntime-cpu"), "OpenVINO": ("openvino",)}
"""The ``--backend`` names besides ``auto`` that run each CPU runtime."""

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
