"""Build and load the C kernel (``resources/native/inception.c``) on first use.

The kernel is compiled by this machine's C compiler for this machine's
processor (``-O3 -march=native``), once, into the cache
(``<cache>/native/``), under a name that hashes the source, the compiler's
command and version, and the processor's model and flags: a cache shared by
two machines never hands one the other's instructions. The compiler is
``$CC`` where set, else the first of ``cc``, ``gcc`` and ``clang`` found.
Where none is found or the build fails, :func:`load_kernel` raises
:class:`~mesolive.errors.BackendUnavailable` and mesolive runs ONNX Runtime's
graph instead. Linux only: elsewhere the flags, the loader and the cache
differ, and nothing here was measured.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from mesolive import paths
from mesolive.backends import cpuinfo
from mesolive.errors import BackendUnavailable

log = logging.getLogger(__name__)

SOURCE = "native/inception.c"
"""The kernel's source, under :func:`mesolive.paths.resources_dir`."""

FLAGS = ("-O3", "-march=native", "-shared", "-fPIC", "-pthread")
BUILD_TIMEOUT_S = 120

_lock = threading.Lock()
_loaded: dict[Path, ctypes.CDLL] = {}


def compiler() -> list[str]:
    """The C compiler's command: ``$CC`` split as a shell would, else cc, gcc or clang.

    Raises
    ------
    BackendUnavailable
        None is found.
    """
    cc = os.environ.get("CC", "").strip()
    if cc:
        return shlex.split(cc)
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return [found]
    raise BackendUnavailable("no C compiler (cc, gcc or clang) to build the kernel with")


def _processor() -> bytes:
    """The processor's model and flags as /proc/cpuinfo gives them (what -march=native reads)."""
    try:
        text = cpuinfo.CPUINFO.read_text(encoding="ascii", errors="replace")
    except OSError:
        return b""
    keep = ("model name", "flags", "vendor_id", "cpu family", "model")
    lines = {line for line in text.splitlines() if line.split(":")[0].strip() in keep}
    return "\n".join(sorted(lines)).encode()


@functools.lru_cache(maxsize=8)
def _version(cc: tuple[str, ...]) -> bytes:
    """``cc --version``'s output, asked once per process and command (every model open
    reads the kernel's name, :func:`library_path`). A compiler that does not run is asked
    again next time."""
    try:
        done = subprocess.run([*cc, "--version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BackendUnavailable(f"the C compiler {cc[0]} does not run ({e})") from e
    if done.returncode:
        raise BackendUnavailable(f"the C compiler {cc[0]} does not run (--version failed)")
    return done.stdout


def library_path() -> tuple[Path, list[str]]:
    """Where this machine's build of the kernel lives, and the command that builds it there.

    Raises
    ------
    BackendUnavailable
        Not on Linux, or no working C compiler.
    """
    if not sys.platform.startswith("linux"):
        raise BackendUnavailable("the C kernel is built on Linux only")
    source = paths.resources_dir() / SOURCE
    cc = compiler()
    h = hashlib.sha256(source.read_bytes())
    for part in (" ".join([*cc, *FLAGS]).encode(), _version(tuple(cc)), _processor()):
        h.update(b"\0" + part)
    out = paths.cache_dir() / "native" / f"inception-{h.hexdigest()[:16]}.so"
    return out, [*cc, *FLAGS, "-o", "{out}", str(source)]


def load_kernel() -> ctypes.CDLL:
    """The kernel's library, built first if this machine has no build of it yet.

    Raises
    ------
    BackendUnavailable
        Not on Linux, no C compiler, or the build or the load failed (the
        compiler's first line of complaint is in the message).
    """
    out, command = library_path()
    with _lock:
        lib = _loaded.get(out)
        if lib is None:
            if not out.is_file():
                _build(out, command)
            try:
                lib = ctypes.CDLL(str(out))
            except OSError as e:
                raise BackendUnavailable(f"{out}: the C kernel does not load ({e})") from e
            _declare(lib)
            _loaded[out] = lib
    return lib


def _build(out: Path, command: list[str]) -> None:
    log.info("building the C kernel: %s", out.name)
    try:
        with paths.replacing(out) as tmp:
            argv = [str(tmp) if a == "{out}" else a for a in command]
            done = subprocess.run(argv, capture_output=True, timeout=BUILD_TIMEOUT_S, check=False)
            if done.returncode:
                lines = done.stderr.decode(errors="replace").strip().splitlines()
                first = next((x for x in lines if "error" in x), lines[0] if lines else "")
                raise BackendUnavailable(f"the C kernel did not build ({argv[0]}: {first.strip()})")
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BackendUnavailable(f"the C kernel did not build ({e})") from e


def _declare(lib: ctypes.CDLL) -> None:
    """Argument and result types of the kernel's one entry point (``inception.c``)."""
    ints = ctypes.POINTER(ctypes.c_int)
    floats = ctypes.POINTER(ctypes.c_float)
    lib.mesolive_inception.argtypes = [
        ctypes.c_void_p,  # pixels, uint8
        ctypes.c_int,  # count
        ctypes.c_int,  # side
        ints,
        floats,
        ints,
        floats,
        floats,  # out
        ctypes.c_int,  # threads
    ]
    lib.mesolive_inception.restype = ctypes.c_int
