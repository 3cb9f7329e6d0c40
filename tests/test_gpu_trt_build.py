"""Building an engine when the timing cache or the progress display misbehaves.

TensorRT cannot run here: ``tests/gpu_stack`` stands in for it with the
behaviour TensorRT's own sources give these calls (see its docstring). The
timing cache is a real file, the progress bar real tqdm on a real stream.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from mesolive.backends import trt_build
from mesolive.backends.trt_build import BuildOptions, build_serialized
from mesolive.errors import EngineBuildError

from .gpu_fakes import import_gpu_stack

ONNX = b"an ONNX graph"


@pytest.fixture
def trt(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    trt_build.make_logger.cache_clear()
    module, _ = import_gpu_stack(monkeypatch)
    yield module
    trt_build.make_logger.cache_clear()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


class _Stream:
    """stderr that takes the first write (the bar appears), then fails with ``error``.

    As a pipe closed by its reader does mid-build, or as Ctrl-C arrives while
    the bar is drawn. TensorRT's trampoline would have cancelled the build.
    """

    def __init__(self, error: BaseException, good_writes: int = 1) -> None:
        self.error = error
        self.good_writes = good_writes
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        if self.writes > self.good_writes:
            raise self.error
        return len(text)

    def flush(self) -> None:
        pass


def test_a_good_timing_cache_is_used_and_grows(
    trt: ModuleType, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "timing.cache"
    cache.write_bytes(trt.CACHE_MAGIC + trt.DEVICE + b":old;")
    plan = build_serialized(ONNX, BuildOptions(), cache)
    assert plan == trt.plan(ONNX)
    assert cache.read_bytes() == trt.CACHE_MAGIC + trt.DEVICE + b":old;timing;"
    assert _warnings(caplog) == []


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\x00\x17truncated", "cannot be read"),  # create_timing_cache gives None
        (b"FAKE-TRT-TIMING-CACHE:sm75:old;", "was measured on another GPU or TensorRT"),
    ],
)
def test_an_unusable_timing_cache_is_replaced_with_one_warning(
    trt: ModuleType, tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, why: str
) -> None:
    cache = tmp_path / "timing.cache"
    cache.write_bytes(content)
    assert build_serialized(ONNX, BuildOptions(), cache) == trt.plan(ONNX)
    assert _warnings(caplog) == [
        f"timing cache {cache} {why}; starting a new one (it replaces the file)"
    ]
    assert cache.read_bytes() == trt.CACHE_MAGIC + trt.DEVICE + b":timing;"
    caplog.clear()
    build_serialized(ONNX, BuildOptions(), cache)  # the new cache is good: no more warnings
    assert _warnings(caplog) == []


def test_no_timing_cache_at_all_builds_without_one(
    trt: ModuleType, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trt.NO_TIMING_CACHE = True
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"damaged")
    assert build_serialized(ONNX, BuildOptions(), cache) == trt.plan(ONNX)
    assert _warnings(caplog) == [
        f"timing cache {cache} cannot be read; starting a new one (it replaces the file)",
        "TensorRT could not start a timing cache; building without one",
    ]
    assert cache.read_bytes() == b"damaged"  # nothing to replace it with


@pytest.mark.parametrize(
    "good_writes",
    # The bar fails to close (phase_finish), to move (step_complete), to appear
    # (phase_start; last: tqdm keeps a bar whose first draw failed, which draws again).
    [4, 1, 0],
)
def test_a_failing_progress_display_is_switched_off_and_the_build_goes_on(
    good_writes: int,
    trt: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    cache = tmp_path / "timing.cache"
    stream = _Stream(OSError(errno.EPIPE, "Broken pipe"), good_writes)
    monkeypatch.setattr("sys.stderr", stream)
    plan = build_serialized(ONNX, BuildOptions(), cache, show_progress=True)
    monkeypatch.undo()
    assert plan == trt.plan(ONNX)
    assert stream.writes > good_writes  # it did fail
    assert cache.is_file()
    (warning,) = _warnings(caplog)
    assert warning == (
        "the build's progress display failed and was switched off "
        "(BrokenPipeError: [Errno 32] Broken pipe); this did not affect the build"
    )
    assert "Exception caught" not in capfd.readouterr().err  # TensorRT saw no exception


def test_ctrl_c_in_the_progress_display_cancels_the_build_and_is_raised(
    trt: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "timing.cache"
    monkeypatch.setattr("sys.stderr", _Stream(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        build_serialized(ONNX, BuildOptions(), cache, show_progress=True)
    monkeypatch.undo()
    assert not cache.exists()  # the build was cancelled: nothing measured to keep


def test_a_build_that_finds_no_kernels_says_so(
    trt: ModuleType, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trt.FAIL_BUILD = True
    with pytest.raises(EngineBuildError, match=r"could not build the engine .* --workspace"):
        build_serialized(ONNX, BuildOptions(), tmp_path / "timing.cache", show_progress=False)
    assert "Could not find any implementation for node conv1" in caplog.text
    assert _warnings(caplog) == []
