"""OpenVINO runner: a float32 ONNX graph on the CPU, in float32 or bfloat16.

OpenVINO is an optional extra (``pip install 'mesolive[openvino]'``). Its
use here is bfloat16 on CPUs with AMX or AVX-512 BF16
(:data:`mesolive.backends.cpuinfo.BF16_FLAGS`): the same float32 graph ONNX
Runtime runs, computed in bfloat16 by oneDNN, with no calibration and no
graph of its own. OpenVINO's CPU plugin *defaults* to bfloat16 on such CPUs,
so ``fp32`` is asked for explicitly, and a requested ``bf16`` is read back
from the compiled model: where the plugin kept float32 the runner refuses
rather than run under a false name. Threads follow ONNX Runtime's setting
(``MESOLIVE_ORT_THREADS``, else one per core); the latency hint keeps one
stream, so one batch uses all of them.

The graph is compiled once more for each batch size up to
:data:`STATIC_MAX_BATCH` that the runner meets (about 50 ms and 2-25 MB
each, the first time): with every shape known, OpenVINO turns the pixels'
type conversion into generated code and plans its memory once (+5-12 %
faces/s for Meso-4 at batch 2-8). Larger batches run the dynamic-shape
model. A graph in lanes (:mod:`mesolive.models.lanes_graph`) may read faces
in rows of two; an odd batch is then padded by one face whose result is
dropped.

OpenVINO is only ever imported through :func:`import_openvino`, which keeps
its usage telemetry off.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from mesolive.backends.base import DescribedRunner, TensorSpec
from mesolive.backends.onnxruntime import default_threads
from mesolive.errors import BackendUnavailable, ModelError
from mesolive.signals import interrupted_import

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

STATIC_MAX_BATCH = 8
"""Batches up to this size run a model compiled for their size (module docstring)."""
OV_PRECISIONS = {"fp32": "f32", "bf16": "bf16"}
"""mesolive's precision name -> OpenVINO's ``INFERENCE_PRECISION_HINT``."""

INSTALL_HINT = "pip install 'mesolive[openvino]'"


def import_openvino() -> ModuleType:
    """``import openvino`` with its usage telemetry off.

    Importing ``openvino`` imports its model converter, which sends a usage
    event to Google Analytics (the ``openvino_telemetry`` package, on unless
    the user has opted out) from a thread it starts for that. mesolive looks
    at people's calls and sends nothing anywhere: with ``openvino_telemetry``
    marked absent, OpenVINO falls back to its own no-op stub.

    Raises
    ------
    ImportError
        OpenVINO is not installed.
    """
    sys.modules.setdefault("openvino_telemetry", None)
    try:
        import openvino
    except ImportError as e:
        interrupted_import(e)  # Ctrl+C pressed as it loaded: not "not installed"
        raise
    return openvino


def openvino_version() -> str:
    """The installed OpenVINO's version, ``""`` where it is not installed."""
    try:
        openvino = import_openvino()
    except ImportError:
        return ""
    return str(openvino.__version__).split("-")[0]  # "2026.4.1-22982-e213a14…": the release


class OpenVinoRunner(DescribedRunner):
    """Runs an ONNX file with OpenVINO's CPU plugin at ``precision`` (``fp32`` or ``bf16``).

    Raises
    ------
    BackendUnavailable
        OpenVINO is not installed, or the CPU plugin would not run ``bf16``.
    ModelError
        OpenVINO cannot read or compile the file.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        threads: int | None = None,
        precision: str = "fp32",
    ) -> None:
        try:
            ov = import_openvino()
        except ImportError as e:
            raise BackendUnavailable(f"OpenVINO is not installed; {INSTALL_HINT}") from e
        if precision not in OV_PRECISIONS:
            raise ModelError(
                f"OpenVINO precision {precision!r}: choose one of {', '.join(OV_PRECISIONS)}"
            )
        config = {
            "INFERENCE_PRECISION_HINT": OV_PRECISIONS[precision],
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads or default_threads(),
        }
        from mesolive.models.lanes_graph import faces_per_row

        # read as ONNX first: OpenVINO would try every frontend on a bad file (and
        # TensorFlow's prints to stderr), then raise a many-line message
        graph = _read_onnx(model)
        declared = [v.name for v in (*graph.graph.input, *graph.graph.output)]
        self._rows = faces_per_row(graph)
        core = ov.Core()
        try:
            self._model = core.read_model(str(Path(model)))
            compiled = core.compile_model(self._model, "CPU", config)
        except Exception as e:  # OpenVINO raises RuntimeError/its own types for bad graphs
            raise ModelError(f"{model}: OpenVINO cannot compile it ({_last_line(e)})") from e
        got = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        if precision == "bf16" and "bf16" not in got and "bfloat16" not in got:
            raise BackendUnavailable(f"OpenVINO runs this CPU in {got}, not bfloat16")
        self.name = "openvino-cpu" + ("-bf16" if precision == "bf16" else "")
        self._inputs = [
            TensorSpec(
                _graph_name(p.get_names(), declared),
                tuple(d.get_length() if d.is_static else "N" for d in p.get_partial_shape()),
                np.dtype(p.get_element_type().to_dtype()),
            )
            for p in compiled.inputs
        ]
        self._outputs = [_graph_name(p.get_names(), declared) for p in compiled.outputs]
        self._core, self._config = core, config
        self._dynamic = compiled.create_infer_request()
        self._static: dict[int, Any] = {}

    def input_buffer(self, n: int) -> np.ndarray:
        """As :meth:`Runner.input_buffer`, with room for the padding face of an odd batch."""
        return super().input_buffer(self._whole_rows(n))[:n]

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._dynamic is None:
            raise RuntimeError("runner is closed")
        name = self._inputs[0].name
        x = feed[name]
        n = len(x)
        padded = self._whole_rows(n)
        if padded != n:
            x = self._pad(x, padded)
        # the inputs are only read while this call blocks; the outputs are copies
        result = self._request(padded).infer({name: x}, share_inputs=True, share_outputs=False)
        return {out: np.asarray(result[out])[:n] for out in self._outputs}

    def _whole_rows(self, n: int) -> int:
        """``n`` faces rounded up to whole rows of the graph."""
        return -(-n // self._rows) * self._rows

    def _pad(self, x: np.ndarray, padded: int) -> np.ndarray:
        """``x`` with rows up to ``padded``: the runner's own buffer where ``x`` is its start."""
        buffer = self._buffer
        if (
            buffer is not None
            and len(buffer) >= padded
            and x.ctypes.data == buffer.ctypes.data
            and x.strides == buffer.strides
        ):
            return buffer[:padded]  # the padding face is whatever the buffer held: dropped
        return np.concatenate([x, np.zeros((padded - len(x), *x.shape[1:]), x.dtype)])

    def _request(self, n: int) -> Any:
        """The infer request compiled for batch ``n`` (the dynamic one above the cap)."""
        if not 0 < n <= STATIC_MAX_BATCH:
            return self._dynamic
        request = self._static.get(n)
        if request is not None:
            return request
        try:
            model = self._model.clone()
            model.reshape({0: [n, *(int(d) for d in self._inputs[0].shape[1:])]})
            request = self._core.compile_model(model, "CPU", self._config).create_infer_request()
        except RuntimeError as e:  # memory short: the dynamic model runs every size
            log.warning("OpenVINO could not compile batch %d on its own (%s)", n, _last_line(e))
            request = self._dynamic
        self._static[n] = request
        log.debug("%s: compiled for batch %d", self.name, n)
        return request

    def close(self) -> None:
        self._dynamic = None
        self._static.clear()


def _read_onnx(model: str | os.PathLike[str]) -> onnx.ModelProto:
    """The ONNX graph in ``model`` (without external data).

    Raises
    ------
    ModelError
        The file is not an ONNX graph.
    """
    import onnx

    try:
        return onnx.load(str(model), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and others for a bad file
        raise ModelError(f"{model}: not an ONNX graph ({e})") from e


def _last_line(e: BaseException) -> str:
    """The last non-blank line of OpenVINO's many-line message."""
    return next((ln.strip() for ln in reversed(str(e).splitlines()) if ln.strip()), "")


def _graph_name(names: set[str], declared: list[str]) -> str:
    """The ONNX graph's own name among the names OpenVINO merged into one tensor.

    OpenVINO folds an output into the node that computes it, so a tensor can
    carry both ``logit`` and its producer's name; callers ask for the first.
    """
    return next((n for n in declared if n in names), min(names))
