"""The device's primary CUDA context, made current only where it is used.

CUDA contexts are current per *thread*. ``import pycuda.autoinit`` creates a
context current only in the importing thread, and TensorRT called from any
other thread then fails with "invalid resource handle"; leaving a pushed
context behind aborts pycuda at exit ("context stack was not empty")
(inducer/pycuda#242, NVIDIA/TensorRT#1107, #3028). So no module of mesolive
imports ``pycuda.autoinit``. Instead, the thread that runs inference:

1. retains the device's **primary** context, the one the CUDA runtime (and
   so TensorRT and ONNX Runtime's CUDA provider) use, as pycuda's own
   ``autoprimaryctx`` does with ``Device.retain_primary_context()``;
2. pushes it around every piece of CUDA work and pops it in a ``finally``;
3. allocates, runs and frees everything in that same thread, then releases
   the context (``Context.detach()`` on a retained primary context calls
   ``cuDevicePrimaryCtxRelease``).

A :class:`PrimaryContext` remembers the thread that made it and refuses to
be used from another one, which turns a confusing driver error into a clear one.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any


class WrongThread(RuntimeError):
    """A CUDA object was used outside the thread that created it."""


class PrimaryContext:
    """The retained primary context of device ``ordinal``; ``with ctx:`` makes it current.

    Nesting is allowed (each ``with`` pushes once and pops once). Create it,
    use it and :meth:`release` it in one thread.
    """

    def __init__(self, ordinal: int = 0) -> None:
        import pycuda.driver as cuda  # never pycuda.autoinit: see the module docstring

        cuda.init()
        self._cuda: Any = cuda
        self.device = cuda.Device(ordinal)
        self._ctx: Any = self.device.retain_primary_context()
        self._thread = threading.get_ident()
        self._depth = 0

    def check_thread(self) -> None:
        if threading.get_ident() != self._thread:
            raise WrongThread(
                "CUDA objects are bound to the thread that created them "
                f"(thread {self._thread}); this is thread {threading.get_ident()}: "
                "create, use and close a TensorRT runner in one thread"
            )

    @property
    def released(self) -> bool:
        return self._ctx is None

    def __enter__(self) -> PrimaryContext:
        self.check_thread()
        if self._ctx is None:
            raise RuntimeError("the CUDA context was released")
        self._ctx.push()
        self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        self._cuda.Context.pop()

    def release(self) -> None:
        """Drop this thread's hold on the primary context. Idempotent."""
        if self._ctx is None:
            return
        self.check_thread()
        if self._depth:
            raise RuntimeError("release() inside 'with context:'; pop it first")
        ctx, self._ctx = self._ctx, None
        ctx.detach()
