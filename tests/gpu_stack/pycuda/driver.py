"""The pycuda driver calls mesolive makes: contexts, memory, copies, a stream.

As in pycuda, ``Context.pop()`` pops the calling thread's current context and
fails on an empty stack; ``detach()`` on a retained primary context releases
it. ``STACK``, ``RETAINED`` and ``MEMORY`` let a test check that everything
was undone. "Device" memory is host memory here; the stand-in TensorRT reads
and writes it through :func:`device_array`.

Work runs when it is enqueued, so every order is kept; ``CALLS`` records the
copies, the stand-in TensorRT's launches and the event calls as ``(what,
stream handle, event handle)`` (0 where there is none), for tests of what was
enqueued where and when the host waited.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

STACK: list[Context] = []
RETAINED: list[Context] = []
MEMORY: dict[int, bytearray] = {}
CALLS: list[tuple[str, int, int]] = []
_ADDRESSES = itertools.count(0x7F0000000000, 1 << 20)
_HANDLES = itertools.count(1)


class LogicError(RuntimeError):
    pass


def init(flags: int = 0) -> None:
    pass


class Context:
    def push(self) -> None:
        STACK.append(self)

    @staticmethod
    def pop() -> None:
        if not STACK:
            raise LogicError("cuCtxPopCurrent failed: invalid context")
        STACK.pop()

    def detach(self) -> None:
        RETAINED.remove(self)


class Device:
    def __init__(self, ordinal: int) -> None:
        self.ordinal = ordinal

    def retain_primary_context(self) -> Context:
        ctx = Context()
        RETAINED.append(ctx)
        return ctx


class DeviceAllocation:
    def __init__(self, nbytes: int) -> None:
        self.address = next(_ADDRESSES)
        MEMORY[self.address] = bytearray(nbytes)

    def __int__(self) -> int:
        return self.address

    def free(self) -> None:
        del MEMORY[self.address]


def mem_alloc(nbytes: int) -> DeviceAllocation:
    return DeviceAllocation(nbytes)


def pagelocked_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return np.empty(shape, dtype)


def device_array(address: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """The device memory at ``address`` as an array (for the stand-in TensorRT)."""
    count = int(np.prod(shape))
    return np.frombuffer(MEMORY[address], dtype, count).reshape(shape)


class Stream:
    def __init__(self) -> None:
        self.handle = next(_HANDLES)

    def synchronize(self) -> None:
        CALLS.append(("stream.synchronize", self.handle, 0))

    def wait_for_event(self, event: Event) -> None:
        CALLS.append(("wait_for_event", self.handle, event.handle))


class Event:
    def __init__(self, flags: int = 0) -> None:
        self.handle = next(_HANDLES)

    def record(self, stream: Stream | None = None) -> Event:
        CALLS.append(("record", stream.handle if stream is not None else 0, self.handle))
        return self

    def synchronize(self) -> Event:
        CALLS.append(("event.synchronize", 0, self.handle))
        return self


def memcpy_htod_async(dest: DeviceAllocation, src: np.ndarray, stream: Stream) -> None:
    data = np.ascontiguousarray(src).tobytes()
    MEMORY[int(dest)][: len(data)] = data
    CALLS.append(("htod", stream.handle, 0))


def memcpy_dtoh_async(dest: np.ndarray, src: DeviceAllocation, stream: Stream) -> None:
    dest[...] = np.frombuffer(MEMORY[int(src)], dest.dtype, dest.size).reshape(dest.shape)
    CALLS.append(("dtoh", stream.handle, 0))
