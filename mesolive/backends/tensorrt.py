"""TensorRT runner: a prebuilt engine on one CUDA stream, with pycuda buffers.

Runtime API used (TensorRT 10.x/11.x Python API, named tensors only):
``Runtime.deserialize_cuda_engine``, ``ICudaEngine.num_io_tensors`` /
``get_tensor_name`` / ``get_tensor_mode`` / ``get_tensor_dtype`` /
``get_tensor_shape`` / ``get_tensor_profile_shape``,
``create_execution_context``, ``IExecutionContext.set_input_shape`` /
``set_tensor_address`` / ``execute_async_v3``; and pycuda's
``pagelocked_empty``, ``mem_alloc``, ``Stream`` (``wait_for_event``),
``Event`` (``record``, ``synchronize``), ``memcpy_htod_async`` /
``memcpy_dtoh_async``. ``deserialize_cuda_engine`` and ``create_execution_context``
return ``None`` when they fail (a plan TensorRT cannot read; too little GPU
memory): each becomes one line saying what to do.

Design, per call of :meth:`TensorRTRunner.infer`:

* page-locked host buffers and device buffers are allocated once, for the
  optimisation profile's maximum batch; output addresses are given to
  TensorRT once, the input shape only when the batch size changes;
* the input is double-buffered: two page-locked host and two device input
  buffers, filled in turn. Chunk k's host-to-device copy runs on a copy
  stream while chunk k-1 computes on the compute stream (events order
  them), so a batch larger than ``max_batch`` overlaps its copies with
  compute; the outputs of chunk k-1 are read back while chunk k computes.
  A caller that wrote its faces into :meth:`TensorRTRunner.input_buffer`
  (the next input buffer) saves the host copy as well;
* the retained primary CUDA context is pushed for the call and popped after
  (see :mod:`mesolive.backends.cuda_ctx`): create, use and close a runner in
  one thread (the inference worker's). Every call has finished on the GPU
  when it returns.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from mesolive import paths
from mesolive.backends.base import Runner, TensorSpec, split_batches
from mesolive.backends.engine_cache import (
    DEFAULT_OPT_BATCH,
    Sidecar,
    Target,
    find_matching,
    read_sidecar,
    rebuild_command,
)
from mesolive.errors import BackendUnavailable, EngineIncompatible, MesoliveError
from mesolive.models.onnx_graph import INPUT_NAME

log = logging.getLogger(__name__)


SLOTS = 2
"""Input buffers filled in turn (double buffering, module docstring)."""


class TensorRTRunner(Runner):
    """Runs one serialized engine whose only input is ``input`` (N, 256, 256, 3) uint8."""

    name = "tensorrt"

    def __init__(
        self, engine_path: str | os.PathLike[str], sidecar: Sidecar | None = None, device: int = 0
    ) -> None:
        import pycuda.driver as cuda
        import tensorrt as trt

        from mesolive.backends.cuda_ctx import PrimaryContext
        from mesolive.backends.trt_build import make_logger

        self.path = Path(engine_path)
        self.sidecar = sidecar
        self._cuda: Any = cuda
        self._closed = False
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._copy_stream: Any = None
        # per slot: input and output host buffers, device input, and its events
        self._host: list[dict[str, np.ndarray]] = []
        self._device: dict[str, Any] = {}
        self._device_in: list[Any] = []
        self._copied: list[Any] = []  # the slot's host input has reached the device
        self._consumed: list[Any] = []  # the engine has read the slot's device input
        self._done: list[Any] = []  # the slot's outputs are in its host buffers
        self._outputs: list[str] = []
        self._bound_batch = 0
        self._bound_slot = -1
        self._next = 0
        self._ctx = PrimaryContext(device)
        try:
            with self._ctx:
                self._logger = make_logger()
                self._runtime = trt.Runtime(self._logger)
                # Both calls return None on failure (NVIDIA/TensorRT
                # python/src/infer/pyCore.cpp binds the C++ pointers as they are),
                # after TensorRT has logged why through our logger.
                self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
                if self._engine is None:
                    raise EngineIncompatible(
                        f"{self.path}: TensorRT cannot load this engine (a damaged file, or "
                        "built by another TensorRT or for another GPU; see the TensorRT "
                        f"error above); rebuild: {self._rebuild_command()}"
                    )
                self._context = self._engine.create_execution_context()
                if self._context is None:
                    raise BackendUnavailable(
                        f"{self.path.name}: TensorRT could not create an execution context: "
                        "too little free GPU memory (see the TensorRT error above); close "
                        "other programs on the GPU (nvidia-smi lists them) or rebuild with "
                        f"a smaller --max-batch: {self._rebuild_command(smaller=True)}"
                    )
                self._allocate(trt)
                self._stream = cuda.Stream()
                self._copy_stream = cuda.Stream()
                for events in (self._copied, self._consumed, self._done):
                    events += [cuda.Event() for _ in range(SLOTS)]
        except BaseException:
            self.close()
            raise

    def _rebuild_command(self, *, smaller: bool = False) -> str:
        """The build-engine command for this engine (half its batch range if ``smaller``)."""
        side = self.sidecar
        if side is None:
            return "mesolive build-engine --force"
        top = max(1, side.max_batch // 2) if smaller else side.max_batch
        return rebuild_command(
            side.model,
            side.precision,
            top,
            min(int(side.profile.get("opt", DEFAULT_OPT_BATCH)), top),
            self.path.parent,
            force=not smaller,
        )

    def _allocate(self, trt: Any) -> None:
        """Buffers for the profile's maximum batch; output addresses are set here, once."""
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if inputs != [INPUT_NAME]:
            raise EngineIncompatible(
                f"{self.path}: engine inputs are {inputs}, expected [{INPUT_NAME!r}]"
            )
        _, _, max_shape = engine.get_tensor_profile_shape(INPUT_NAME, 0)
        self.max_batch = int(max_shape[0])
        self._in_shape = tuple(int(d) for d in max_shape)
        self._host = [{} for _ in range(SLOTS)]
        for name in names:
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            if name == INPUT_NAME:
                shape = self._in_shape
            else:
                rest = tuple(int(d) for d in engine.get_tensor_shape(name))[1:]
                if any(d < 0 for d in rest):
                    raise EngineIncompatible(f"{self.path}: output {name} has dynamic {rest}")
                shape = (self.max_batch, *rest)
                self._outputs.append(name)
            for host in self._host:
                host[name] = self._cuda.pagelocked_empty(shape, dtype)
            if name == INPUT_NAME:
                self._device_in = [self._cuda.mem_alloc(h[name].nbytes) for h in self._host]
            else:
                self._device[name] = self._cuda.mem_alloc(self._host[0][name].nbytes)
                if not self._context.set_tensor_address(name, int(self._device[name])):
                    raise EngineIncompatible(f"{self.path}: TensorRT refused the address of {name}")
            log.info(
                "  %-6s %-8s %-8s %s",
                "input" if name == INPUT_NAME else "output",
                name,
                dtype.name,
                shape,
            )

    @property
    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(INPUT_NAME, (-1, *self._in_shape[1:]), self._input_dtype)]

    @property
    def _input_dtype(self) -> np.dtype:
        return self._host[0][INPUT_NAME].dtype

    def input_buffer(self, n: int) -> np.ndarray:
        """The page-locked input buffer the next chunk is copied from (``n <= max_batch``).

        A batch written here reaches the GPU without a host copy; a larger one
        gets an ordinary array (it is split into chunks anyway).
        """
        if self._closed:
            raise RuntimeError("runner is closed")
        if n > self.max_batch:
            return super().input_buffer(n)
        return self._host[self._next][INPUT_NAME][:n]

    def describe(self) -> str:
        side = self.sidecar
        what = f"{side.precision}, {side.gpu_name}" if side else "no sidecar"
        return f"{self.path.name}: {what}, batch <= {self.max_batch}"

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._ctx.check_thread()
        if self._closed:
            raise RuntimeError("runner is closed")
        x = np.asarray(feed[INPUT_NAME])
        rest = self._in_shape[1:]
        if x.ndim != len(self._in_shape) or x.shape[1:] != rest or x.dtype != self._input_dtype:
            raise ValueError(
                f"input must be (N, {', '.join(map(str, rest))}) {self._input_dtype}, "
                f"got {x.shape} {x.dtype}"
            )
        out = {
            n: np.empty((len(x), *self._host[0][n].shape[1:]), self._host[0][n].dtype)
            for n in self._outputs
        }
        if len(x) == 0:
            return out
        with self._ctx:
            pending: tuple[int, slice] | None = None
            for sl in split_batches(len(x), self.max_batch):
                slot = self._enqueue(x[sl])
                if pending is not None:
                    self._collect(*pending, out)
                pending = (slot, sl)
            if pending is not None:
                self._collect(*pending, out)
        return out

    def _enqueue(self, x: np.ndarray) -> int:
        """Copy one chunk in and run it, without waiting; returns its slot."""
        cuda, b = self._cuda, len(x)
        slot = self._next
        self._next = (slot + 1) % SLOTS
        host = self._host[slot][INPUT_NAME]
        if x.ctypes.data != host.ctypes.data or not x.flags.c_contiguous:
            self._copied[slot].synchronize()  # its last copy has left the host buffer
            host[:b] = x
        # the device buffer is free once the engine has read the chunk before
        self._copy_stream.wait_for_event(self._consumed[slot])
        cuda.memcpy_htod_async(self._device_in[slot], host[:b], self._copy_stream)
        self._copied[slot].record(self._copy_stream)
        self._stream.wait_for_event(self._copied[slot])
        if b != self._bound_batch:
            if not self._context.set_input_shape(INPUT_NAME, (b, *self._in_shape[1:])):
                raise RuntimeError(f"TensorRT refused batch {b} (profile 1..{self.max_batch})")
            self._bound_batch = b
        if slot != self._bound_slot:
            if not self._context.set_tensor_address(INPUT_NAME, int(self._device_in[slot])):
                raise RuntimeError(f"TensorRT refused the address of input buffer {slot}")
            self._bound_slot = slot
        if not self._context.execute_async_v3(self._stream.handle):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT error above)")
        self._consumed[slot].record(self._stream)
        for n in self._outputs:
            cuda.memcpy_dtoh_async(self._host[slot][n][:b], self._device[n], self._stream)
        self._done[slot].record(self._stream)
        return slot

    def _collect(self, slot: int, sl: slice, out: dict[str, np.ndarray]) -> None:
        """Wait for the chunk in ``slot`` (the one synchronisation per chunk) and copy it out."""
        self._done[slot].synchronize()
        b = sl.stop - sl.start
        for n in self._outputs:
            out[n][sl] = self._host[slot][n][:b]

    def close(self) -> None:
        """Free buffers, stream, context and engine in this thread, then release the context."""
        if self._closed:
            return
        self._closed = True
        ctx = getattr(self, "_ctx", None)
        if ctx is None or ctx.released:
            return
        ctx.check_thread()
        try:
            with ctx:
                for dev in [*self._device.values(), *self._device_in]:
                    dev.free()
                for host in (h for slot in self._host for h in slot.values()):
                    allocation = getattr(host, "base", None)  # pycuda's HostAllocation
                    if hasattr(allocation, "free"):
                        allocation.free()
                self._device.clear()
                self._device_in.clear()
                self._host.clear()
                # Destroy in reverse order of creation while the context is current.
                self._copied, self._consumed, self._done = [], [], []
                self._copy_stream = None
                self._stream = None
                self._context = None
                self._engine = None
                self._runtime = None
        finally:
            ctx.release()


def open_engine(
    engine_path: str | os.PathLike[str], device: int = 0, sidecar: Sidecar | None = None
) -> TensorRTRunner:
    """Open one engine file with ``sidecar``, else its own (for ``--verify`` and benchmarks)."""
    path = Path(engine_path)
    if sidecar is None:
        try:
            sidecar = read_sidecar(path)
        except (OSError, ValueError, TypeError):
            sidecar = None
    return TensorRTRunner(path, sidecar, device)


def open_matching_engine(
    spec: Any, onnx_file: str | os.PathLike[str], engine_dir: str | os.PathLike[str] | None = None
) -> Runner:
    """The TensorRT runner for ``spec`` from a matching engine in the engine folder.

    Called by :func:`mesolive.backends.select.open_runner`, in the thread that
    will run inference.

    Raises
    ------
    BackendUnavailable
        No GPU, driver, tensorrt or pycuda here (one line naming each).
    EngineIncompatible
        No engine for this model, or none built for this ONNX graph, TensorRT
        version and compute capability; the line ends with the command that
        builds one.
    """
    from mesolive.backends.gpuinfo import first_line, require_stack
    from mesolive.models.download import sha256_file

    stack = require_stack("TensorRT cannot run here")
    gpu = stack.gpu
    if gpu is None:  # require_stack only returns a stack with a GPU
        raise EngineIncompatible("no GPU")
    target = Target(spec.name, sha256_file(onnx_file), stack.tensorrt.version, gpu.name, gpu.cc)
    path, side = find_matching(paths.engine_dir(engine_dir), target)
    try:
        return TensorRTRunner(path, side, gpu.index)
    except MesoliveError:
        raise
    except Exception as e:  # pycuda/TensorRT errors (out of memory, CUDA faults): fall back
        raise BackendUnavailable(
            f"{path.name}: the TensorRT runner did not start ({type(e).__name__}: {first_line(e)})"
        ) from e
