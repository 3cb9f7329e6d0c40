"""ONNX Runtime runner (CPU, or CUDA where onnxruntime-gpu provides it)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import ModuleType

import numpy as np

from mesolive.backends.base import DescribedRunner, TensorSpec
from mesolive.env import env_int
from mesolive.errors import BackendUnavailable, ModelError
from mesolive.models.onnx_graph import LAYOUT_KEY
from mesolive.signals import interrupted_import

log = logging.getLogger(__name__)

_ORT_TYPES = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int64)": np.dtype(np.int64),
}


def default_threads() -> int:
    """``MESOLIVE_ORT_THREADS``, else one intra-op thread per CPU core."""
    return env_int("MESOLIVE_ORT_THREADS", 0, minimum=1) or max(1, os.cpu_count() or 1)


def import_ort() -> ModuleType:
    """``import onnxruntime``, where Ctrl+C pressed as it loads stays an interrupt
    (:func:`mesolive.signals.interrupted_import`).

    Raises
    ------
    ImportError
        onnxruntime is not installed or does not load.
    """
    try:
        import onnxruntime
    except ImportError as e:
        interrupted_import(e)
        raise
    return onnxruntime


def session_options(threads: int | None = None):
    """Session options that hold up on small CPUs.

    Spinning intra-op threads burn the cores the capture thread and the GUI
    need, and on 2 cores made timings swing 2-4x; with spinning off the
    session was both steadier and faster (measured in ``bench/classifier.py``).
    """
    ort = import_ort()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads or default_threads()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


NCHWC_BLOCK = 16
"""Channels of ONNX Runtime's blocked (NCHWc) layout with AVX-512 (8 with AVX2)."""
CPU_LAYOUT = 2
"""Version of :func:`for_cpu`'s layout: the speed in a reduced-precision verdict
(:mod:`mesolive.models.cpu_precision`) was measured under one, so it is part of its key."""


def for_cpu(src: str | bytes) -> str | bytes:
    """The graph ONNX Runtime's CPU provider runs.

    A graph marked ``mesolive.layout = nchw`` (:data:`LAYOUT_KEY`) has
    convolutions of 1-4 filters at full resolution (MesoInception-4's
    branches). ONNX Runtime's NCHWc transformer would pad each to a block of
    :data:`NCHWC_BLOCK` channels and reorder around it (the whole graph ran
    1.7x slower), but it serves the 16-filter convolutions. It converts only a
    convolution whose weights are constant, so the weights of each
    convolution with fewer filters than a block are listed as graph inputs
    too (overridable initializers, never fed: the function is the same),
    which keeps those in plain NCHW while the others are blocked: x1.21-1.33
    the faces/s of the all-NCHW graph for MesoInception-4 (docs/cpu.md).
    Other graphs are returned as given.
    """
    import onnx

    model = onnx.load_from_string(src) if isinstance(src, bytes) else onnx.load(src)
    layout = next((p.value for p in model.metadata_props if p.key == LAYOUT_KEY), "")
    if layout != "nchw":
        return src
    weights = {i.name: i for i in model.graph.initializer}
    pinned = {
        n.input[1]
        for n in model.graph.node
        if n.op_type == "Conv"
        and n.input[1] in weights
        and weights[n.input[1]].dims[0] < NCHWC_BLOCK
    }
    for name in sorted(pinned):
        w = weights[name]
        model.graph.input.append(onnx.helper.make_tensor_value_info(name, w.data_type, w.dims))
    return model.SerializeToString()


def available_providers() -> list[str]:
    try:
        ort = import_ort()
    except ImportError:
        return []
    return list(ort.get_available_providers())


class OnnxRuntimeRunner(DescribedRunner):
    """Runs an ONNX file with ONNX Runtime.

    ``device="cuda"`` asks for the CUDA execution provider and raises
    :class:`BackendUnavailable` where this onnxruntime build has none.
    ``precision`` only labels the runner: ``int8`` (an INT8 graph on the CPU)
    names it ``onnxruntime-cpu-int8``.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | bytes,
        *,
        device: str = "cpu",
        threads: int | None = None,
        precision: str = "fp32",
    ) -> None:
        ort = import_ort()
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailable(
                    "onnxruntime has no CUDA provider; pip install onnxruntime-gpu"
                )
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        src = model if isinstance(model, bytes) else str(Path(model))
        options = session_options(threads)  # a bad MESOLIVE_ORT_THREADS is not a bad file
        try:
            if device == "cpu":
                src = for_cpu(src)
            self._session = ort.InferenceSession(src, options, providers=providers)
        except Exception as e:  # ORT raises its own Fail/InvalidGraph types (onnx: DecodeError)
            where = "model bytes" if isinstance(model, bytes) else str(model)
            raise ModelError(f"{where}: ONNX Runtime cannot load it ({e})") from e
        self.device = device
        self.name = "onnxruntime-cuda" if device == "cuda" else "onnxruntime-cpu"
        if precision == "int8":
            self.name += "-int8"
        self._inputs = [
            TensorSpec(i.name, tuple(i.shape), _ORT_TYPES.get(i.type, np.dtype(np.float32)))
            for i in self._session.get_inputs()
        ]
        self._outputs = [o.name for o in self._session.get_outputs()]

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._session is None:
            raise RuntimeError("runner is closed")
        values = self._session.run(self._outputs, feed)
        return dict(zip(self._outputs, values, strict=True))

    def close(self) -> None:
        self._session = None
