"""What this machine offers for the GPU path, probed without needing any of it.

Three independent pieces must all be present for TensorRT:

* the NVIDIA **driver** with at least one **GPU**: probed through the driver
  library itself (``libcuda.so.1`` / ``nvcuda.dll``) with ``ctypes``, so the
  answer does not depend on pycuda or TensorRT being installed;
* the **tensorrt** Python module, and
* **pycuda** (device buffers, streams, the primary context).

A Python package can be missing (``ModuleNotFoundError`` for that very name)
or installed but broken: its import raises ``ImportError``/``OSError``
because a shared library (``libnvinfer.so.10``, ``libcuda.so.1``) cannot be
loaded. The two need different fixes, so they are reported differently.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import logging
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from mesolive.errors import BackendUnavailable
from mesolive.signals import interrupted_import

log = logging.getLogger(__name__)

INSTALL_GPU = "pip install 'mesolive[gpu]'"
DRIVER_URL = "https://www.nvidia.com/drivers"

# CUDA driver API constants (cuda.h); stable since CUDA 3.x.
_CU_ATTR_CC_MAJOR = 75
_CU_ATTR_CC_MINOR = 76
_CUDA_ERRORS = {
    3: "CUDA_ERROR_NOT_INITIALIZED",
    35: "CUDA_ERROR_INSUFFICIENT_DRIVER",
    100: "CUDA_ERROR_NO_DEVICE",
    101: "CUDA_ERROR_INVALID_DEVICE",
    803: "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
    804: "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
    999: "CUDA_ERROR_UNKNOWN",
}


@dataclass(frozen=True)
class ModuleStatus:
    """Whether a Python module imports.

    ``state`` is ``"ok"``, ``"missing"`` (not installed) or ``"broken"``
    (installed, but importing it fails, usually a missing shared library).
    """

    name: str
    state: str
    version: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "ok"


@dataclass(frozen=True)
class Gpu:
    """One CUDA device as the driver reports it."""

    index: int
    name: str
    cc: tuple[int, int]
    memory_bytes: int

    @property
    def sm(self) -> str:
        """Compute capability as TensorRT and nvcc spell it: ``"sm89"``."""
        return f"sm{self.cc[0]}{self.cc[1]}"


@dataclass(frozen=True)
class DriverStatus:
    """The CUDA driver: its library, its API version and the GPUs it sees.

    ``cuda_version`` is the newest CUDA the driver supports (``"12.4"``);
    ``error`` says why there is no usable GPU (empty when there is one).
    """

    library: str = ""
    cuda_version: str = ""
    gpus: tuple[Gpu, ...] = ()
    error: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.gpus) and not self.error


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none)."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def probe_module(name: str) -> ModuleStatus:
    """Import ``name`` and classify the outcome (never raises).

    ``ModuleNotFoundError`` counts as *missing* only when the missing module
    is ``name`` itself (or a parent package); a ``ModuleNotFoundError`` for
    something the package imports, or an ``ImportError``/``OSError`` from a
    shared library that does not load, means *broken*.
    """
    try:
        mod = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and (name == e.name or name.startswith(e.name + ".")):
            return ModuleStatus(name, "missing")
        return ModuleStatus(name, "broken", error=first_line(e))
    except (ImportError, OSError) as e:
        interrupted_import(e)  # Ctrl+C pressed as it loaded: neither missing nor broken
        return ModuleStatus(name, "broken", error=first_line(e))
    version = getattr(mod, "__version__", "") or getattr(mod, "VERSION_TEXT", "")
    if not version:
        try:
            from importlib.metadata import version as dist_version

            version = dist_version(name.split(".")[0])
        except Exception:  # noqa: BLE001 - metadata is optional, the module works
            version = ""
    return ModuleStatus(name, "ok", version=str(version))


def _driver_library_names() -> list[str]:
    if sys.platform == "win32":
        return ["nvcuda.dll"]
    if sys.platform == "darwin":
        return []
    return ["libcuda.so.1", "libcuda.so"]


def _cu_error(lib: ctypes.CDLL, code: int) -> str:
    name = ctypes.c_char_p()
    try:
        if lib.cuGetErrorName(code, ctypes.byref(name)) == 0 and name.value:
            return name.value.decode()
    except AttributeError:
        pass
    return _CUDA_ERRORS.get(code, f"CUDA error {code}")


@functools.lru_cache(maxsize=1)
def probe_driver() -> DriverStatus:
    """Load the CUDA driver library and list the GPUs (cached for the process).

    Calls only ``cuInit``, ``cuDriverGetVersion``, ``cuDeviceGetCount``,
    ``cuDeviceGet``, ``cuDeviceGetName``, ``cuDeviceGetAttribute`` and
    ``cuDeviceTotalMem_v2`` (CUDA driver API reference); creates no context.
    """
    names = _driver_library_names()
    if not names:
        return DriverStatus(error=f"CUDA does not exist on {sys.platform}")
    lib = None
    tried: list[str] = []
    for n in names:
        try:
            lib = ctypes.CDLL(n)
            break
        except OSError as e:
            tried.append(first_line(e))
    if lib is None:
        return DriverStatus(error=f"no NVIDIA driver ({names[0]} not found)")
    library = names[len(tried)]
    version = ctypes.c_int(0)
    cuda_version = ""
    if lib.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value:
        cuda_version = f"{version.value // 1000}.{version.value % 1000 // 10}"
    rc = lib.cuInit(0)
    if rc != 0:
        what = _cu_error(lib, rc)
        why = "no NVIDIA GPU visible" if rc == 100 else "the CUDA driver does not start"
        return DriverStatus(library, cuda_version, error=f"{why} (cuInit: {what})")
    count = ctypes.c_int(0)
    rc = lib.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0 or count.value == 0:
        return DriverStatus(library, cuda_version, error="no NVIDIA GPU visible")
    gpus = []
    for i in range(count.value):
        dev = ctypes.c_int(0)
        if lib.cuDeviceGet(ctypes.byref(dev), i) != 0:
            continue
        buf = ctypes.create_string_buffer(256)
        lib.cuDeviceGetName(buf, 256, dev)
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        lib.cuDeviceGetAttribute(ctypes.byref(major), _CU_ATTR_CC_MAJOR, dev)
        lib.cuDeviceGetAttribute(ctypes.byref(minor), _CU_ATTR_CC_MINOR, dev)
        mem = ctypes.c_size_t(0)
        lib.cuDeviceTotalMem_v2(ctypes.byref(mem), dev)
        gpus.append(
            Gpu(i, buf.value.decode(errors="replace"), (major.value, minor.value), mem.value)
        )
    return DriverStatus(library, cuda_version, tuple(gpus))


def nvidia_smi_driver() -> str:
    """The driver's own version (``"550.54.14"``) from nvidia-smi, or ``""``."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return ""
    try:
        out = subprocess.run(
            [exe, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else ""


def gpu_slug(name: str) -> str:
    """A file-name-safe GPU name: ``"NVIDIA GeForce RTX 4090"`` -> ``"rtx-4090"``."""
    s = re.sub(r"\b(nvidia|geforce)\b", " ", name.lower())
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    return s or "gpu"


def fast_fp16(cc: tuple[int, int]) -> bool:
    """Whether a GPU of compute capability ``cc`` computes FP16 at full speed or better.

    TensorRT 11 removed ``Builder.platform_has_fast_fp16``, so this follows the
    CUDA programming guide's arithmetic-throughput table: FP16 is at least
    FP32 speed on sm53, sm60, sm62 and everything from Volta (sm70) on; the
    other Maxwell/Pascal parts (e.g. sm61, GeForce 10xx) run it at 1/64 rate.
    """
    return cc >= (7, 0) or cc in ((5, 3), (6, 0), (6, 2))


@dataclass(frozen=True)
class GpuStack:
    """Driver + GPU, tensorrt and pycuda, with what is missing and how to get it."""

    driver: DriverStatus
    tensorrt: ModuleStatus
    pycuda: ModuleStatus
    problems: tuple[tuple[str, str], ...] = field(default=())

    @property
    def ready(self) -> bool:
        return not self.problems

    @property
    def gpu(self) -> Gpu | None:
        return self.driver.gpus[0] if self.driver.gpus else None

    def summary(self, *, hints: bool = True) -> str:
        """One line naming each missing piece (and, with ``hints``, how to get it)."""
        parts = [f"{what} ({hint})" if hints and hint else what for what, hint in self.problems]
        return "; ".join(parts)


def _problems(driver: DriverStatus, trt: ModuleStatus, cuda: ModuleStatus) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if not driver.ok:
        if "does not exist" in driver.error:
            hint = "TensorRT needs Linux or Windows with an NVIDIA GPU"
        elif "not found" in driver.error:
            hint = f"install the NVIDIA driver, {DRIVER_URL}; in a container add --gpus all"
        elif "DRIVER" in driver.error:  # insufficient driver, driver/kernel mismatch
            hint = f"update the NVIDIA driver (or reboot after an update), {DRIVER_URL}"
        else:
            hint = "check nvidia-smi and CUDA_VISIBLE_DEVICES"
        out.append((driver.error, hint))
    if trt.state == "missing":
        out.append(("the tensorrt module is not installed", INSTALL_GPU))
    elif trt.state == "broken":
        out.append(
            (
                f"the tensorrt module does not load: {trt.error}",
                "reinstall it: pip install --force-reinstall tensorrt",
            )
        )
    if cuda.state == "missing":
        out.append(
            (
                "pycuda is not installed",
                f"{INSTALL_GPU}; pycuda compiles against the CUDA toolkit, see docs/gpu.md",
            )
        )
    elif cuda.state == "broken":
        out.append(
            (
                f"pycuda does not load: {cuda.error}",
                "it needs the NVIDIA driver's libcuda and must be built for this CUDA",
            )
        )
    return out


def probe_stack() -> GpuStack:
    """Probe the driver, tensorrt and pycuda (``pycuda.driver``, never ``autoinit``)."""
    driver = probe_driver()
    trt = probe_module("tensorrt")
    cuda = probe_module("pycuda.driver")
    if cuda.ok and not cuda.version:
        pkg = probe_module("pycuda")
        cuda = ModuleStatus("pycuda.driver", "ok", version=pkg.version)
    return GpuStack(driver, trt, cuda, tuple(_problems(driver, trt, cuda)))


class GpuStackMissing(BackendUnavailable):
    """The GPU path lacks a piece; ``short`` is the hint-free text for log lines."""

    def __init__(self, message: str, short: str) -> None:
        super().__init__(message)
        self.short = short


def require_stack(purpose: str) -> GpuStack:
    """Return the probed stack, or raise :class:`GpuStackMissing` naming what is missing."""
    stack = probe_stack()
    if not stack.ready:
        raise GpuStackMissing(f"{purpose}: {stack.summary()}", stack.summary(hints=False))
    return stack
