"""A stand-in for the ``tensorrt`` wheel, which cannot be installed on these machines.

Only the part of the Python API that mesolive calls, and only the behaviour that
its code depends on, each read from TensorRT's own sources (NVIDIA/TensorRT):

* ``IBuilderConfig.create_timing_cache`` returns the C++ pointer as is, so a
  blob TensorRT cannot read comes back as ``None`` (``python/src/infer/pyCore.cpp``,
  ``netconfig_create_timing_cache``; trtexec checks ``timingCache != nullptr``,
  ``samples/utils/timingCache.cpp``); ``set_timing_cache`` takes an
  ``ITimingCache`` (``None`` is a ``TypeError``) and returns ``False`` for a
  cache of another device unless ``ignore_mismatch``.
* The ``IProgressMonitor`` trampoline (``pyCore.cpp``, ``PyProgressMonitor``)
  catches any exception of ``phase_start`` / ``phase_finish`` and prints it;
  one of ``step_complete`` is printed and answered ``False``, which cancels
  the build: ``build_serialized_network`` then returns ``None``.
* ``Runtime.deserialize_cuda_engine`` and ``ICudaEngine.create_execution_context``
  return ``None`` on failure (a plan it cannot read; too little GPU memory:
  "Error Code 2: OutOfMemory", NVIDIA/TensorRT#3017), after logging the error.

A plan is ``PLAN_MAGIC``, the profile's batch range and the ONNX graph it was
built from; an execution context runs that graph in ONNX Runtime, so an engine
computes what the graph computes, plus ``KERNEL_ERROR`` (a TensorRT kernel
that is off), in the stand-in pycuda's memory or, beside the real pycuda, in the
GPU's. A test sets the machine's state through the module variables below, a
subprocess test (``PYTHONPATH``) through the ``FAKE_TRT_*`` variables.
"""

from __future__ import annotations

import enum
import os
from typing import Any

import numpy as np

__version__ = "10.8.0.43"

DEVICE = b"sm89"
"""The device a timing cache is measured on; a cache of another device is a mismatch."""
CACHE_MAGIC = b"FAKE-TRT-TIMING-CACHE:"
PLAN_MAGIC = b"FAKE-TRT-PLAN:"
FREE_DEVICE_MEMORY = int(os.environ.get("FAKE_TRT_FREE_MEMORY", 8 << 30))
"""Bytes of GPU memory an execution context may take (also for subprocess tests)."""
CONTEXT_MEMORY = 64 << 20
"""Bytes an execution context needs."""
KERNEL_ERROR = float(os.environ.get("FAKE_TRT_KERNEL_ERROR", 0))
"""Added to every output of every engine."""
BUILD_STEPS = 3
FAIL_BUILD = False
"""The builder finds no kernels (``build_serialized_network`` returns ``None``)."""
NO_TIMING_CACHE = False
"""``create_timing_cache`` fails even for an empty blob."""


class ILogger:
    class Severity(enum.Enum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    def __init__(self) -> None:
        pass


class IProgressMonitor:
    def __init__(self) -> None:
        pass


class NetworkDefinitionCreationFlag:
    STRONGLY_TYPED = 1


class MemoryPoolType:
    WORKSPACE = 0


class BuilderFlag:
    TF32 = 7


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


def nptype(dtype: Any) -> Any:
    return dtype


def _trampoline(call: Any, *args: Any) -> Any:
    """Call a Python override as the C++ trampoline does: every exception is caught."""
    try:
        return call(*args)
    except BaseException as e:  # noqa: BLE001 - pybind11's catch (...) of the trampoline
        # std::cerr: the process's stderr, not Python's sys.stderr
        os.write(2, f"[ERROR] Exception caught in {call.__name__}(): {e}\n".encode())
        return False


class ITimingCache:
    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def serialize(self) -> bytes:
        return self.blob


class IOptimizationProfile:
    def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
        self.shapes = {name: (tuple(lo), tuple(opt), tuple(hi))}


class IBuilderConfig:
    def __init__(self) -> None:
        self.progress_monitor: IProgressMonitor | None = None
        self.profiles: list[IOptimizationProfile] = []
        self._cache: ITimingCache | None = None

    def set_memory_pool_limit(self, pool: int, size: int) -> None:
        self.workspace = size

    def clear_flag(self, flag: int) -> None:
        pass

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache | None:
        blob = bytes(serialized_timing_cache)
        if NO_TIMING_CACHE:
            return None
        if not blob:
            return ITimingCache(CACHE_MAGIC + DEVICE + b":")
        if not blob.startswith(CACHE_MAGIC):
            return None  # TensorRT logs "corrupted" and returns nullptr
        return ITimingCache(blob)

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        if not isinstance(cache, ITimingCache):
            raise TypeError(
                "set_timing_cache(): incompatible function arguments. The following argument "
                "types are supported: (self, cache: tensorrt.ITimingCache, ignore_mismatch: bool)"
            )
        device = cache.blob[len(CACHE_MAGIC) :].split(b":", 1)[0]
        if device != DEVICE and not ignore_mismatch:
            return False
        self._cache = cache
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self._cache


class INetworkDefinition:
    onnx = b""


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
        self.network = network
        self.num_errors = 0

    def parse(self, model: bytes) -> bool:
        self.network.onnx = bytes(model)
        return True

    def get_error(self, i: int) -> str:
        return "no error"


class Builder:
    def __init__(self, logger: ILogger) -> None:
        self.logger = logger

    def create_network(self, flags: int) -> INetworkDefinition:
        return INetworkDefinition()

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig):
        monitor, log = config.progress_monitor, self.logger
        if monitor is not None:
            _trampoline(monitor.phase_start, "Building engine", None, BUILD_STEPS)
            for step in range(BUILD_STEPS):
                _trampoline(monitor.phase_start, "Tactic timing", "Building engine", 1)
                _trampoline(monitor.phase_finish, "Tactic timing")
                if not _trampoline(monitor.step_complete, "Building engine", step):
                    log.log(ILogger.Severity.ERROR, "Build cancelled by the progress monitor")
                    return None
            _trampoline(monitor.phase_finish, "Building engine")
        if FAIL_BUILD:
            log.log(ILogger.Severity.ERROR, "Could not find any implementation for node conv1")
            return None
        if config._cache is not None:
            config._cache.blob += b"timing;"
        lo, _, hi = config.profiles[0].shapes["input"]
        return plan(network.onnx, lo[0], hi[0])


def plan(onnx_model: bytes, min_batch: int = 1, max_batch: int = 64) -> bytes:
    """A serialized engine: the magic, the batch range, the graph."""
    return PLAN_MAGIC + f"{min_batch},{max_batch}:".encode() + onnx_model


class IExecutionContext:
    """Runs the engine's ONNX graph in ONNX Runtime on pycuda's (stand-in) device memory."""

    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self.addresses: dict[str, int] = {}
        self.batch = 0

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self.addresses[name] = int(memory)
        return True

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        if not self.engine.min_batch <= shape[0] <= self.engine.max_batch:
            return False
        self.batch = shape[0]
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        from pycuda import driver

        engine, n = self.engine, self.batch
        shapes = {name: (n, *engine.get_tensor_shape(name)[1:]) for name in engine.names}
        name = engine.names[0]
        x = _read(driver, self.addresses[name], shapes[name], engine.get_tensor_dtype(name))
        if hasattr(driver, "CALLS"):
            driver.CALLS.append(("execute", stream_handle, 0))
        outputs = engine.session().run(None, {name: x})
        for name, value in zip(engine.names[1:], outputs, strict=True):
            _write(driver, self.addresses[name], (value + KERNEL_ERROR).astype(np.float32))
        return True


def _read(driver: Any, address: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """The tensor at ``address``. Under the real pycuda (``tests/test_gpu_pycuda.py``) it
    is copied from the GPU once all work enqueued before the launch is done, so the
    launch still reads what the runner's copies and events left there."""
    if hasattr(driver, "device_array"):  # the stand-in pycuda: host memory
        return driver.device_array(address, shape, dtype)
    driver.Context.synchronize()
    host = np.empty(shape, dtype)
    driver.memcpy_dtoh(host, address)
    return host


def _write(driver: Any, address: int, value: np.ndarray) -> None:
    if hasattr(driver, "device_array"):
        driver.device_array(address, value.shape, value.dtype)[...] = value
    else:
        driver.memcpy_htod(address, np.ascontiguousarray(value))


class ICudaEngine:
    def __init__(self, logger: ILogger, min_batch: int, max_batch: int, onnx: bytes) -> None:
        import onnx as onnx_lib

        self.logger = logger
        self.min_batch, self.max_batch, self.onnx = min_batch, max_batch, onnx
        graph = onnx_lib.load_from_string(onnx).graph
        self.names = [graph.input[0].name, *(o.name for o in graph.output)]
        self._shapes = {
            v.name: tuple(d.dim_value or -1 for d in v.type.tensor_type.shape.dim)
            for v in [*graph.input, *graph.output]
        }
        self._dtypes = {
            v.name: onnx_lib.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
            for v in [*graph.input, *graph.output]
        }
        self.num_io_tensors = len(self.names)
        self.device_memory_size_v2 = CONTEXT_MEMORY
        self._session: Any = None

    def session(self) -> Any:
        import onnxruntime as ort

        if self._session is None:
            self._session = ort.InferenceSession(self.onnx, providers=["CPUExecutionProvider"])
        return self._session

    def get_tensor_name(self, i: int) -> str:
        return self.names[i]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode.INPUT if name == self.names[0] else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> Any:
        return self._dtypes[name]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def get_tensor_profile_shape(self, name: str, profile: int) -> list[tuple[int, ...]]:
        rest = self._shapes[name][1:]
        return [(self.min_batch, *rest), (self.max_batch, *rest), (self.max_batch, *rest)]

    def create_execution_context(self) -> IExecutionContext | None:
        if CONTEXT_MEMORY > FREE_DEVICE_MEMORY:
            self.logger.log(
                ILogger.Severity.ERROR,
                "[executionContext.cpp::ExecutionContext::470] Error Code 2: OutOfMemory "
                "(no further information)",
            )
            return None
        return IExecutionContext(self)


class Runtime:
    def __init__(self, logger: ILogger) -> None:
        self.logger = logger

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> ICudaEngine | None:
        blob = bytes(serialized_engine)
        if not blob.startswith(PLAN_MAGIC):
            self.logger.log(
                ILogger.Severity.ERROR,
                "IRuntime::deserializeCudaEngine: Error Code 1: Serialization "
                "(Serialization assertion plan->header.magicTag == rt::kPLAN_MAGIC_TAG failed.)",
            )
            return None
        batches, onnx = blob[len(PLAN_MAGIC) :].split(b":", 1)
        lo, hi = (int(b) for b in batches.split(b","))
        return ICudaEngine(self.logger, lo, hi, onnx)
