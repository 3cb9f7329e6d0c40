"""Shared fixtures: real data from ../shared, an isolated cache, a thread-leak guard."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from mesolive.classify.preprocess import AUTHORS
from mesolive.imageio import read_image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MESOLIVE_SHARED", ROOT.parent / "shared")).resolve()
MODELS = SHARED / "models"
MODEL_NAMES = ["meso4-df", "meso4-f2f", "mesoinception4-df", "mesoinception4-f2f"]
H5_OF = {
    "meso4-df": "Meso4_DF",
    "meso4-f2f": "Meso4_F2F",
    "mesoinception4-df": "MesoInception_DF",
    "mesoinception4-f2f": "MesoInception_F2F",
}

if not MODELS.is_dir():
    raise pytest.UsageError(f"tests need the shared data at {SHARED} (set MESOLIVE_SHARED)")


@pytest.fixture(scope="session")
def shared() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    """The authors' Keras outputs (``../shared/golden``): images and logits per model."""
    g = np.load(SHARED / "golden" / "meso_keras_reference.npz")
    return {k: g[k] for k in g.files}


def mesolive(
    *args: str, env: dict[str, str] | None = None, check: bool = False, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mesolive ARGS`` as a user would; never a traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "mesolive", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@contextlib.contextmanager
def ctrl_c_as_from_a_terminal() -> Iterator[None]:
    """Ctrl+C's default handling (KeyboardInterrupt) inside the block.

    A suite started in the background by a shell runs with SIGINT ignored: a
    child started then inherits that, and ``_thread.interrupt_main()`` does
    nothing.
    """
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, ignored)


def start_mesolive(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``python -m mesolive ARGS`` as from a terminal, to be signalled; text pipes.

    It starts with Ctrl+C's default handling (:func:`ctrl_c_as_from_a_terminal`),
    so that a SIGINT the test sends reaches it as a terminal's would.
    """
    with ctrl_c_as_from_a_terminal():
        proc = subprocess.Popen(
            [sys.executable, "-m", "mesolive", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
    _STARTED.append(proc)
    return proc


_STARTED: list[subprocess.Popen[str]] = []
"""The runs :func:`start_mesolive` started; none may outlive its test."""


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def warnings_from() -> Iterator[Callable[[str], list[str]]]:
    """``warnings_from("mesolive.detect")``: the WARNING messages logged under that logger.

    caplog misses them once the CLI has set up logging (``propagate = False``).
    """
    installed: list[tuple[logging.Logger, _Warnings]] = []

    def collect(name: str) -> list[str]:
        handler = _Warnings()
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        installed.append((logger, handler))
        return handler.lines

    yield collect
    for logger, handler in installed:
        logger.removeHandler(handler)


def shrunk_clip(src: Path, dst: Path, factor: float) -> int:
    """``src`` written to ``dst`` (MJPG) with every frame shrunk by ``factor``; its frame count."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS)
    out = None
    n = 0
    try:
        while (got := cap.read())[0]:
            small = cv2.resize(got[1], None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
            if out is None:
                size = (small.shape[1], small.shape[0])
                out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
            out.write(small)
            n += 1
    finally:
        cap.release()
        if out is not None:
            out.release()
    return n


def crops_of(folder: Path, n: int | None = None) -> list[np.ndarray]:
    """The first ``n`` (None: all) JPEG crops of ``folder`` in name order, as RGB uint8."""
    return [read_image(f) for f in sorted(folder.glob("*.jpg"))[:n]]


def training_pixels(shared: Path, per_class: int) -> np.ndarray:
    """The first ``per_class`` real and fake crops of the *training* DFDC set, as graphs read them.

    Calibration takes its crops from here, so it never sees the test faces.
    """
    train = shared / "train" / "dfdc"
    return AUTHORS.pixels(crops_of(train / "real", per_class) + crops_of(train / "fake", per_class))


@pytest.fixture(scope="module")
def test_faces(shared: Path) -> np.ndarray:
    """60 real and 60 fake DFDC test crops, and the authors' four samples."""
    dfdc = shared / "faces" / "dfdc"
    samples = [read_image(f) for f in sorted((shared / "samples" / "faces").rglob("*.jpg"))]
    return AUTHORS.pixels(samples + crops_of(dfdc / "real", 60) + crops_of(dfdc / "fake", 60))


@pytest.fixture
def calibration_folder(shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of 48 training crops named by MESOLIVE_CALIBRATION."""
    folder = tmp_path / "crops"
    folder.mkdir()
    for label in ("real", "fake"):
        for f in sorted((shared / "train" / "dfdc" / label).glob("*.jpg"))[:24]:
            shutil.copy(f, folder / f"{label}-{f.name}")
    monkeypatch.setenv("MESOLIVE_CALIBRATION", str(folder))
    return folder


def nchw(images_u8: np.ndarray) -> np.ndarray:
    """(N, 256, 256, 3) uint8 RGB → the authors' network input, by their contract."""
    return AUTHORS.to_batch(images_u8, "rgb")


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Models come from ../shared; converted graphs go to a per-run cache."""
    cache = tmp_path_factory.mktemp("mesolive-cache")
    os.environ["MESOLIVE_MODEL_DIR"] = str(MODELS)
    os.environ["MESOLIVE_CACHE_DIR"] = str(cache)
    os.environ["MESOLIVE_ENGINE_DIR"] = str(cache / "engines")
    os.environ.pop("MESOLIVE_DOWNLOAD_BASE", None)


@pytest.fixture(scope="module")
def libcuda(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the stand-in ``libcuda.so.1`` (:func:`tests.gpu_fakes.fake_libcuda`)."""
    from tests.gpu_fakes import fake_libcuda

    folder = fake_libcuda(tmp_path_factory.mktemp("libcuda"))
    if folder is None:
        pytest.skip("needs a C compiler (cc) on Linux to build the stand-in libcuda.so.1")
    return folder


@pytest.fixture(autouse=True)
def _logging_as_it_was():
    """Undo what a verb run in this process (``cli.main``) did to mesolive's logger."""
    logger = logging.getLogger("mesolive")
    state = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = state


@pytest.fixture(autouse=True)
def _no_dangling_threads():
    """Fail a test that leaves a thread running (as napari's fixture does)."""
    before = set(threading.enumerate())
    yield
    leftover = []
    for t in set(threading.enumerate()) - before:
        t.join(timeout=5)
        if t.is_alive() and not t.daemon:
            leftover.append(t.name)
        elif t.is_alive():
            leftover.append(f"{t.name} (daemon)")
    assert not leftover, f"threads left running: {leftover}"


@pytest.fixture(autouse=True)
def _no_dangling_runs():
    """Kill a run of :func:`start_mesolive` that its test left going, and fail the test.

    A run that did not answer its signal failed its test on a timeout, then
    trained on through the rest of the suite, slowing every later test.
    """
    yield
    left = []
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            left.append(" ".join(map(str, proc.args[3:])))  # after python -m mesolive
            proc.kill()
            proc.wait(timeout=30)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert not left, f"mesolive runs left going (killed): {left}"


XVFB_SIZE = (800, 600)


@pytest.fixture(scope="module")
def xvfb() -> Iterator[str]:
    """A private X server on a free display number (Xvfb picks it: ``-displayfd``)."""
    yield from run_xvfb()


def run_xvfb(*extra: str) -> Iterator[str]:
    """Start Xvfb with ``extra`` arguments, yield its display name, then end it.

    ``-noreset`` matters: by default Xvfb resets when its last client leaves, and
    a connection made during the reset fails. ``-br`` gives a black root window.
    """
    r, w = os.pipe()
    proc = subprocess.Popen(
        [
            "Xvfb",
            "-displayfd",
            str(w),
            "-screen",
            "0",
            "{}x{}x24".format(*XVFB_SIZE),
            "-nolisten",
            "tcp",
            "-br",
            "-noreset",
            *extra,
        ],
        pass_fds=[w],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    try:
        number = b""
        deadline = time.monotonic() + 20
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(r, 16) if ready else b""
            if not chunk:
                pytest.fail("Xvfb did not start")
            number += chunk
        yield ":" + number.decode().strip()
    finally:
        os.close(r)
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
