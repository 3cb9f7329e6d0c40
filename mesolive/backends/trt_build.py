"""Compile an ONNX graph into a serialized TensorRT engine (TensorRT 11.x, and 10.x).

Everything here follows TensorRT's documented Python API; what it relies on:

* Strong typing (10-to-11 migration guide, "Strongly Typed Networks Are Now
  Required"): the network takes every tensor's type from the ONNX graph, so
  precision is chosen by *which graph* is compiled (float32, the FP16 graph
  of ``build_onnx(w, "fp16")``, or the INT8 Q/DQ graph of
  :mod:`mesolive.models.quantize`), never by builder flags. ``BuilderFlag.FP16``
  / ``INT8``, the INT8 calibrators and ``Builder.platform_has_fast_fp16`` are
  gone in 11 and not used. ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` is
  required on 10.x and accepted but ignored on 11.x, so it is set when present.
* ``OnnxParser.parse``, ``IBuilderConfig.set_memory_pool_limit(WORKSPACE)``,
  one ``IOptimizationProfile`` (``set_shape(min, opt, max)``),
  ``create_timing_cache`` / ``set_timing_cache`` / ``get_timing_cache().serialize()``,
  ``IBuilderConfig.progress_monitor`` (``IProgressMonitor``, TensorRT >= 8.6) and
  ``Builder.build_serialized_network``.
* ``BuilderFlag.TF32`` is cleared for float32 engines: TF32 rounds the inputs of
  every product to 10 mantissa bits, and an engine called "fp32" should agree
  with the float32 reference to float32 precision.
* What the documentation does not say, read from TensorRT's Python bindings
  (NVIDIA/TensorRT ``python/src/infer/pyCore.cpp``): ``create_timing_cache``
  returns ``None`` for a blob it cannot read (see :func:`attach_timing_cache`),
  and the ``IProgressMonitor`` trampoline swallows a callback's exception and
  cancels the build (see :class:`BuildProgress`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mesolive.backends import engine_cache
from mesolive.errors import EngineBuildError
from mesolive.models.onnx_graph import INPUT_NAME, PIXELS_SHAPE
from mesolive.paths import write_bytes_atomic

log = logging.getLogger(__name__)

_SEVERITY_TO_LEVEL = {
    "INTERNAL_ERROR": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "INFO": logging.DEBUG,  # TensorRT's INFO is chatty: keep it for -v
    "VERBOSE": logging.DEBUG,
}


@functools.lru_cache(maxsize=1)
def make_logger() -> Any:
    """The process's one ``trt.ILogger``; it forwards TensorRT's messages to :mod:`logging`.

    One instance for every builder and runtime: TensorRT 8.0 and older treated it
    as a singleton, and later versions require it to outlive every object made
    with it (ILogger docs); ``logging`` is thread-safe as TensorRT requires.
    """
    import tensorrt as trt

    class _Logger(trt.ILogger):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            level = _SEVERITY_TO_LEVEL.get(getattr(severity, "name", str(severity)), logging.INFO)
            logging.getLogger("mesolive.tensorrt").log(level, "%s", msg)

    return _Logger()


class BuildProgress:
    """What the build's progress monitor saw go wrong, for the report after the build.

    TensorRT's Python trampoline swallows an exception raised in a monitor's
    callback: it prints it, and for ``step_complete`` answers ``False``, which
    *cancels* the build (NVIDIA/TensorRT ``python/src/infer/pyCore.cpp``,
    ``PyProgressMonitor``). The build would then fail with no word of why. So
    the callbacks catch everything themselves: a failing display is switched
    off and the build goes on; Ctrl-C (``KeyboardInterrupt``, which Python
    raises in whatever Python code runs next: often these callbacks) cancels
    the build and is raised again once TensorRT has stopped.
    """

    def __init__(self) -> None:
        self.error: BaseException | None = None

    @property
    def interrupted(self) -> bool:
        return isinstance(self.error, KeyboardInterrupt)

    def failed(self, error: BaseException) -> None:
        """Remember the first error, or an interrupt over any other."""
        if self.error is None or isinstance(error, KeyboardInterrupt):
            self.error = error

    def report(self) -> None:
        """After the build: raise an interrupt again, log a display failure."""
        if self.interrupted:
            raise KeyboardInterrupt
        if self.error is not None:
            log.warning(
                "the build's progress display failed and was switched off (%s: %s); "
                "this did not affect the build",
                type(self.error).__name__,
                self.error,
            )


def make_progress_monitor(show: bool, progress: BuildProgress) -> Any | None:
    """A ``trt.IProgressMonitor`` that draws the top-level build phase as a bar.

    TensorRT calls it from its own threads ("must be thread-safe"), so state is
    guarded by a lock. Nested phases only update the bar's label. Errors are
    caught and handed to ``progress`` (see :class:`BuildProgress`).
    """
    import tensorrt as trt

    if not hasattr(trt, "IProgressMonitor"):
        return None
    from mesolive.progress import progress_bar

    class _Monitor(trt.IProgressMonitor):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._bars: dict[str, Any] = {}
            self._on = True

        def _fail(self, error: BaseException) -> bool:
            progress.failed(error)
            self._on = False
            bars, self._bars = list(self._bars.values()), {}
            for bar in bars:
                try:
                    bar.close()  # on the stream that just failed: may fail again
                except BaseException as e:  # noqa: BLE001 - an interrupt still counts
                    progress.failed(e)
            return not progress.interrupted

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with self._lock:
                try:
                    if not self._on:
                        return
                    if parent_phase is None:
                        log.info("TensorRT: %s", phase_name)
                        if show:  # first drawn at its first step: tqdm's constructor
                            # draws holding tqdm's global lock, which a failing draw keeps
                            self._bars[phase_name] = progress_bar(
                                total=num_steps, desc=phase_name, delay=1e-9
                            )
                    else:
                        for bar in self._bars.values():
                            bar.set_postfix_str(phase_name, refresh=False)
                except BaseException as e:  # noqa: BLE001 - reported after the build
                    self._fail(e)

        def step_complete(self, phase_name: str, step: int) -> bool:
            with self._lock:
                try:
                    bar = self._bars.get(phase_name) if self._on else None
                    if bar is not None:
                        bar.n = step + 1
                        # nolock: tqdm's refresh() keeps its global lock when the draw
                        # raises, and every later bar in any thread would wait on it
                        bar.refresh(nolock=True)
                except BaseException as e:  # noqa: BLE001 - reported after the build
                    return self._fail(e)
                return not progress.interrupted  # False cancels the build

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                try:
                    bar = self._bars.pop(phase_name, None)
                    if bar is not None:
                        bar.close()
                except BaseException as e:  # noqa: BLE001 - reported after the build
                    self._fail(e)

    return _Monitor()


@dataclass(frozen=True)
class BuildOptions:
    """One optimisation profile over the batch axis, and the builder's budget."""

    max_batch: int = engine_cache.DEFAULT_MAX_BATCH
    opt_batch: int = engine_cache.DEFAULT_OPT_BATCH
    workspace_mb: int = 1024
    precision: str = "fp16"  # only for the TF32 choice; the graph carries the types

    def validate(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"--max-batch must be at least 1, got {self.max_batch}")
        if not 1 <= self.opt_batch <= self.max_batch:
            raise ValueError(
                f"--opt-batch must be between 1 and --max-batch ({self.max_batch}), "
                f"got {self.opt_batch}"
            )
        if self.workspace_mb < 16:
            raise ValueError(f"--workspace must be at least 16 MB, got {self.workspace_mb}")

    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) shapes of ``input``: (N, 256, 256, 3) uint8 pixels."""
        return (1, *PIXELS_SHAPE), (self.opt_batch, *PIXELS_SHAPE), (self.max_batch, *PIXELS_SHAPE)


def build_serialized(
    onnx_bytes: bytes,
    options: BuildOptions,
    timing_cache: Path | None = None,
    *,
    show_progress: bool = False,
) -> bytes:
    """Parse ``onnx_bytes`` and build a serialized engine (the plan bytes).

    The timing cache file, if given, is read before and written after the
    build under a file lock, so concurrent builds on one machine neither
    corrupt it nor lose each other's measurements.

    Raises
    ------
    EngineBuildError
        The parser rejects the graph, or the builder returns nothing; the
        message carries TensorRT's own first error.
    """
    import tensorrt as trt

    options.validate()
    logger = make_logger()
    builder = trt.Builder(logger)
    flags = 0
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is not None:
        flags |= 1 << int(strongly_typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(
            "TensorRT's ONNX parser rejected the graph: " + (errors[0] if errors else "no detail")
        )

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    if options.precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    lo, opt, hi = options.shapes()
    profile.set_shape(INPUT_NAME, lo, opt, hi)
    config.add_optimization_profile(profile)
    progress = BuildProgress()
    monitor = make_progress_monitor(show_progress, progress)
    if monitor is not None:
        config.progress_monitor = monitor

    def build() -> bytes:
        started = time.perf_counter()
        plan = builder.build_serialized_network(network, config)
        progress.report()
        if plan is None:
            raise EngineBuildError(
                "TensorRT could not build the engine (see the TensorRT errors above; "
                "a larger --workspace or a smaller --max-batch may help)"
            )
        log.info("TensorRT built the engine in %.1f s", time.perf_counter() - started)
        return bytes(plan)

    if timing_cache is None:
        return build()
    with engine_cache.locked(timing_cache):
        blob = timing_cache.read_bytes() if timing_cache.is_file() else b""
        attached = attach_timing_cache(config, blob, timing_cache)
        plan = build()
        if attached:
            write_bytes_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    return plan


def attach_timing_cache(config: Any, blob: bytes, source: Path) -> bool:
    """Give ``config`` the timing cache ``blob`` read from ``source``; ``False``: none at all.

    ``create_timing_cache`` hands back TensorRT's pointer as it is, so a blob
    TensorRT cannot read (a truncated or damaged file) gives ``None``
    (NVIDIA/TensorRT ``python/src/infer/pyCore.cpp``; trtexec checks for
    ``nullptr``, ``samples/utils/timingCache.cpp``), and ``set_timing_cache``
    refuses a cache measured on another device or TensorRT
    (``ignore_mismatch=False``: its timings would mislead). Either way the
    build starts a new cache, which replaces the file after the build, with
    one warning. Should even an empty cache fail, the build runs without one.
    """
    cache = config.create_timing_cache(blob) if blob else None
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return True
    if blob:
        why = "cannot be read" if cache is None else "was measured on another GPU or TensorRT"
        log.warning("timing cache %s %s; starting a new one (it replaces the file)", source, why)
    fresh = config.create_timing_cache(b"")
    if fresh is not None and config.set_timing_cache(fresh, ignore_mismatch=False):
        return True
    log.warning("TensorRT could not start a timing cache; building without one")
    return False
