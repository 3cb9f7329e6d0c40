"""TensorRT runner (placeholder until the GPU path lands)."""

from __future__ import annotations

from mesolive.backends.base import Runner
from mesolive.errors import BackendUnavailable


def open_matching_engine(spec, onnx_file, engine_dir=None) -> Runner:
    raise BackendUnavailable("the TensorRT runner is not available in this build")
