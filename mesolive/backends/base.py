"""The runner contract shared by every inference back end.

A runner owns one compiled model (an ONNX Runtime session, a TensorRT engine)
and everything it allocated. It is created, used and closed in *one* thread:
the inference worker's. Like Polygraphy's runners it takes a feed of named
arrays and returns named arrays.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (``-1`` or a string for dynamic axes) and numpy dtype."""

    name: str
    shape: tuple[int | str, ...]
    dtype: np.dtype


class Runner(ABC):
    """Batch in, named outputs out; ``warmup`` once; ``close`` frees everything.

    ``max_batch`` is the largest batch one ``infer`` call accepts (``None``:
    unbounded). Callers that may exceed it use :func:`split_batches`.
    """

    name: str = "runner"
    max_batch: int | None = None
    _buffer: np.ndarray | None = None

    @property
    @abstractmethod
    def input_specs(self) -> list[TensorSpec]: ...

    @abstractmethod
    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; returned arrays are owned by the caller."""

    def input_buffer(self, n: int) -> np.ndarray:
        """A writable (n, ...) array of the input's shape and dtype, to fill and pass to ``infer``.

        Writing a batch here instead of into a new array saves an allocation
        per batch and, where the runner keeps its own host memory for the input
        (TensorRT's page-locked buffers), the copy into it. The array belongs
        to the runner: a later call of this method may hand out the same memory.
        """
        spec = self.input_specs[0]
        rest = tuple(int(d) for d in spec.shape[1:])
        buffer = self._buffer
        if buffer is None or len(buffer) < n or buffer.shape[1:] != rest:
            buffer = self._buffer = np.empty((n, *rest), spec.dtype)
        return buffer[:n]

    def warmup(self, batch: int = 1) -> None:
        """Run once on zeros so that the first real frame is not slow."""
        feed = {}
        for spec in self.input_specs:
            shape = tuple(batch if not isinstance(d, int) or d < 0 else d for d in spec.shape)
            feed[spec.name] = np.zeros(shape, dtype=spec.dtype)
        self.infer(feed)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions, buffers and contexts. Idempotent."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class DescribedRunner(Runner):
    """A runner whose runtime describes the graph's tensors when it opens.

    Subclasses set ``_inputs`` and ``_outputs`` in ``__init__`` from what the
    runtime reports (names as the ONNX graph declares them).
    """

    _inputs: list[TensorSpec]
    _outputs: list[str]

    @property
    def input_specs(self) -> list[TensorSpec]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)


def split_batches(n: int, max_batch: int | None) -> list[slice]:
    """Slices covering ``range(n)`` in chunks of at most ``max_batch``."""
    if n < 0:
        raise ValueError(f"batch size must be >= 0, got {n}")
    if max_batch is None or max_batch <= 0:
        return [slice(0, n)] if n else []
    return [slice(i, min(i + max_batch, n)) for i in range(0, n, max_batch)]
