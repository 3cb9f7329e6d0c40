"""Real files that stand in for a GPU stack this machine lacks, for subprocess tests.

* :func:`broken_package` writes a package whose import fails the way a wheel
  with a missing shared library fails (``ImportError: libnvinfer.so.10: cannot
  open shared object file``).
* :func:`stub_package` writes a package that imports and reports a version.
* :func:`fake_libcuda` compiles a ``libcuda.so.1`` that answers the few CUDA
  driver calls :mod:`mesolive.backends.gpuinfo` makes (one "GPU", sm89,
  24 GiB, CUDA 12.4; ``FAKE_CUDA_INIT`` sets cuInit's return code). It is
  found through ``LD_LIBRARY_PATH`` exactly as the real one would be.

Each test runs mesolive in a subprocess with these on ``PYTHONPATH`` /
``LD_LIBRARY_PATH``, so the code under test imports them for real.

* :func:`import_gpu_stack` imports, in this process and for one test, the
  stand-in ``tensorrt`` and ``pycuda`` packages of ``tests/gpu_stack``: the
  part of their API mesolive calls, behaving as TensorRT's and pycuda's own
  sources say they do where it matters (each module's docstring cites them).
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

from mesolive.backends.gpuinfo import probe_driver, probe_module

ROOT = Path(__file__).resolve().parents[1]
GPU_STACK = Path(__file__).resolve().with_name("gpu_stack")
CPU_FP32 = ("--precision", "fp32")
"""Pins the CPU fallback to ONNX Runtime's float32 graph: on a CPU with AMX and OpenVINO
installed, ``auto`` would run bfloat16 there and the back-end line would name OpenVINO."""

without_gpu_stack = pytest.mark.skipif(
    bool(probe_driver().library)
    or probe_module("tensorrt").state != "missing"
    or probe_module("pycuda").state != "missing",
    reason="asserts what a machine without NVIDIA driver, tensorrt and pycuda reports",
)

FAKE_LIBCUDA_C = r"""
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
static int env_int(const char *k, int d) { const char *v = getenv(k); return v ? atoi(v) : d; }
int cuInit(unsigned int flags) { (void)flags; return env_int("FAKE_CUDA_INIT", 0); }
int cuDriverGetVersion(int *v) { *v = 12040; return 0; }
int cuDeviceGetCount(int *n) { *n = 1; return 0; }
int cuDeviceGet(int *d, int i) { *d = i; return 0; }
int cuDeviceGetName(char *name, int len, int dev) {
    (void)dev; strncpy(name, "NVIDIA Fake GPU 9000", (size_t)len); name[len - 1] = 0; return 0;
}
int cuDeviceGetAttribute(int *v, int attr, int dev) {
    (void)dev; *v = attr == 75 ? 8 : attr == 76 ? 9 : 0; return 0;
}
int cuDeviceTotalMem_v2(size_t *b, int dev) { (void)dev; *b = (size_t)24 << 30; return 0; }
int cuGetErrorName(int code, const char **s) {
    *s = code == 100  ? "CUDA_ERROR_NO_DEVICE"
         : code == 35 ? "CUDA_ERROR_INSUFFICIENT_DRIVER"
                      : "CUDA_ERROR_UNKNOWN";
    return 0;
}
"""


def broken_package(root: Path, name: str, library: str) -> Path:
    """``root/<name>/__init__.py`` raising the ImportError of an unloadable library."""
    pkg = root / name
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(
        f'raise ImportError("{library}: cannot open shared object file: No such file or '
        'directory")\n'
    )
    return root


def stub_package(root: Path, name: str, version: str, submodules: tuple[str, ...] = ()) -> Path:
    """A package that imports fine and reports ``version`` (``__version__``)."""
    pkg = root / name
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(f'__version__ = "{version}"\nVERSION_TEXT = "{version}"\n')
    for sub in submodules:
        (pkg / f"{sub}.py").write_text("")
    return root


def fake_libcuda(folder: Path) -> Path | None:
    """Compile the fake driver into ``folder/libcuda.so.1``; ``None`` without a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not sys.platform.startswith("linux"):
        return None
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / "fake_libcuda.c"
    src.write_text(FAKE_LIBCUDA_C)
    subprocess.run(
        [cc, "-shared", "-fPIC", "-o", str(folder / "libcuda.so.1"), str(src)],
        check=True,
        capture_output=True,
    )
    return folder


def run_mesolive(
    args: list[str],
    *,
    pythonpath: Sequence[Path] = (),
    libdir: Path | None = None,
    env: dict[str, str] | None = None,
    code: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mesolive ARGS`` (or ``python -c CODE``) with fakes on the paths."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([*(str(p) for p in pythonpath), str(ROOT)])
    if libdir is not None:
        e["LD_LIBRARY_PATH"] = os.pathsep.join(
            [str(libdir), *filter(None, [e.get("LD_LIBRARY_PATH")])]
        )
    e.update(env or {})
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "mesolive", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=300, check=False)


def import_gpu_stack(monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, ModuleType]:
    """The stand-in ``tensorrt`` and ``pycuda.driver``, imported fresh; gone after the test."""
    names = ("tensorrt", "pycuda", "pycuda.driver")
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)  # remembers what was there (or nothing)
        del sys.modules[name]
    monkeypatch.syspath_prepend(str(GPU_STACK))
    trt, driver = (importlib.import_module(n) for n in ("tensorrt", "pycuda.driver"))
    assert Path(trt.__file__).is_relative_to(GPU_STACK), trt.__file__
    return trt, driver
