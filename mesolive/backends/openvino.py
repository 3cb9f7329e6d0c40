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

OpenVINO is only ever imported through :func:`import_openvino`, which keeps
its usage telemetry off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from mesolive.backends.base import DescribedRunner, TensorSpec
from mesolive.backends.onnxruntime import default_threads
from mesolive.errors import BackendUnavailable, ModelError

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
    import openvino

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
        # read as ONNX first: OpenVINO would try every frontend on a bad file (and
        # TensorFlow's prints to stderr), then raise a many-line message
        declared = _declared_names(model)
        try:
            compiled = ov.Core().compile_model(str(Path(model)), "CPU", config)
        except Exception as e:  # OpenVINO raises RuntimeError/its own types for bad graphs
            last = next((ln for ln in reversed(str(e).splitlines()) if ln.strip()), "")
            raise ModelError(f"{model}: OpenVINO cannot compile it ({last.strip()})") from e
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
        self._request = compiled.create_infer_request()

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._request is None:
            raise RuntimeError("runner is closed")
        # the inputs are only read while this call blocks; the outputs are copies
        result = self._request.infer(feed, share_inputs=True, share_outputs=False)
        return {name: np.asarray(result[name]) for name in self._outputs}

    def close(self) -> None:
        self._request = None


def _declared_names(model: str | os.PathLike[str]) -> list[str]:
    """The input and output names the ONNX file declares.

    Raises
    ------
    ModelError
        The file is not an ONNX graph.
    """
    import onnx

    try:
        graph = onnx.load(str(model), load_external_data=False).graph
    except Exception as e:  # onnx raises DecodeError and others for a bad file
        raise ModelError(f"{model}: not an ONNX graph ({e})") from e
    return [v.name for v in (*graph.input, *graph.output)]


def _graph_name(names: set[str], declared: list[str]) -> str:
    """The ONNX graph's own name among the names OpenVINO merged into one tensor.

    OpenVINO folds an output into the node that computes it, so a tensor can
    carry both ``logit`` and its producer's name; callers ask for the first.
    """
    return next((n for n in declared if n in names), min(names))
