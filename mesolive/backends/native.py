"""MesoInception-4 on the CPU: the C kernel for its inception blocks, ONNX Runtime for the rest.

MesoInception-4's first two stages are convolutions of 1-4 filters at
256×256 and 128×128, which ONNX Runtime runs through its generic
convolution at a fraction of the processor's rate; a kernel written for
them (``resources/native/inception.c``, built here on first use by
:mod:`mesolive.backends.native_build`) computes them per face in vector
registers, on up to ``threads`` threads of its own that start and end
within each :meth:`NativeInceptionRunner.infer` call. ONNX Runtime runs the
remaining stages and the dense layers from what the kernel wrote
(:func:`mesolive.models.onnx_graph.build_tail_onnx`). The runner reads and
returns what the ONNX graphs do (``input`` uint8 BGR crops; ``logit``,
``p_real``), so it stands wherever ONNX Runtime's float32 runner does;
``--precision auto`` runs it where it measured faster here
(:func:`mesolive.models.cpu_precision.native_verdict`).
"""

from __future__ import annotations

import ctypes

import numpy as np

from mesolive.backends.base import Runner, TensorSpec
from mesolive.backends.native_build import load_kernel
from mesolive.backends.onnxruntime import OnnxRuntimeRunner, default_threads
from mesolive.classify.preprocess import Preprocess
from mesolive.errors import BackendUnavailable, InputError
from mesolive.models import registry
from mesolive.models.inception_native import NATIVE_STAGES, native_stages
from mesolive.models.keras_h5 import MesoWeights, load_keras_weights
from mesolive.models.onnx_graph import INPUT_NAME, PIXELS_SHAPE, build_tail_onnx

_STATUS = {-1: "out of memory", -2: "a shape it does not compute"}


class NativeInceptionRunner(Runner):
    """One MesoInception-4 network: the C kernel, then ONNX Runtime's tail graph.

    Raises
    ------
    BackendUnavailable
        The kernel cannot be built or loaded here (:func:`load_kernel`).
    ValueError
        The network is not one the kernel computes
        (:func:`mesolive.models.inception_native.why_not_native`).
    """

    name = "native-cpu"

    def __init__(
        self, weights: MesoWeights, contract: Preprocess, *, threads: int | None = None
    ) -> None:
        self._stages = native_stages(weights, contract)
        self._kernel = load_kernel()
        self._threads = threads or default_threads()
        tail = build_tail_onnx(weights, NATIVE_STAGES).SerializeToString()
        self._tail: OnnxRuntimeRunner | None = OnnxRuntimeRunner(tail, threads=threads)
        self._widths = [(ctypes.c_int * 4)(*(int(w) for w in row)) for row in self._stages.widths]
        self._params = [
            p.ctypes.data_as(ctypes.POINTER(ctypes.c_float)) for p in self._stages.params
        ]

    @property
    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(INPUT_NAME, ("N", *PIXELS_SHAPE), np.dtype(np.uint8))]

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._tail is None:
            raise RuntimeError("runner is closed")
        pixels = feed[INPUT_NAME]
        if pixels.dtype != np.uint8 or pixels.shape[1:] != PIXELS_SHAPE:
            raise InputError(
                f"the C kernel reads (N, {', '.join(map(str, PIXELS_SHAPE))}) uint8 crops, "
                f"got {pixels.shape} {pixels.dtype}"
            )
        pixels = np.ascontiguousarray(pixels)
        features = np.empty((len(pixels), *self._stages.out_shape), np.float32)
        status = self._kernel.mesolive_inception(
            pixels.ctypes.data,
            len(pixels),
            PIXELS_SHAPE[0],
            self._widths[0],
            self._params[0],
            self._widths[1],
            self._params[1],
            features.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            self._threads,
        )
        if status:
            raise RuntimeError(f"the C kernel failed: {_STATUS.get(status, status)}")
        return self._tail.infer({INPUT_NAME: features})

    def close(self) -> None:
        if self._tail is not None:
            self._tail.close()
        self._tail = None


def check_native(spec: registry.ModelSpec) -> None:
    """Raise :class:`BackendUnavailable` unless ``spec`` is one MesoInception-4 network."""
    if spec.arch != "mesoinception4" or len(registry.networks(spec)) != 1:
        raise BackendUnavailable("the C kernel runs one MesoInception-4 network")


def open_native(
    spec: registry.ModelSpec, model_dir: str | None = None, *, threads: int | None = None
) -> NativeInceptionRunner:
    """:class:`NativeInceptionRunner` of ``spec``'s weights under its contract.

    Raises
    ------
    BackendUnavailable
        ``spec`` is not one MesoInception-4 network the kernel computes, or
        the kernel cannot be built or loaded here.
    """
    check_native(spec)
    weights = load_keras_weights(
        registry.weights_path(spec, model_dir, progress=False), expect=spec.arch
    )
    try:
        return NativeInceptionRunner(weights, spec.preprocess, threads=threads)
    except ValueError as e:
        raise BackendUnavailable(f"the C kernel cannot run {spec.name}: {e}") from e
