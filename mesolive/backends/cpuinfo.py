"""Which reduced-precision instructions this CPU has: INT8 (VNNI, AMX) and bfloat16.

ONNX Runtime's integer convolutions (the ``QLinearConv`` an INT8 Q/DQ graph
becomes) use VNNI's ``VPDPBUSD`` or AMX tiles where the processor has them;
without them they fall back to ``VPMADDUBSW``, which is slower and can
saturate (ONNX Runtime docs, *Quantize ONNX models*, "When and why do I need
to try U8U8?"). mesolive therefore runs INT8 only where one of
:data:`INT8_FLAGS` is present. OpenVINO's CPU plugin runs a float32 graph in
bfloat16 only where one of :data:`BF16_FLAGS` is present (elsewhere it
silently keeps float32), so mesolive offers ``bf16`` only there. The flags
are read from ``/proc/cpuinfo`` on Linux; elsewhere none are assumed.
"""

from __future__ import annotations

import sys
from pathlib import Path

PRECISIONS = ("auto", "fp32", "int8", "bf16")
"""``--precision`` on the CPU: see :mod:`mesolive.models.cpu_precision`."""

INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")
"""Linux cpuinfo flags of native INT8 dot products, strongest first."""

BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""Linux cpuinfo flags of native bfloat16 dot products, strongest first."""

CPUINFO = Path("/proc/cpuinfo")


def _flags() -> set[str]:
    """This CPU's cpuinfo flags; empty off Linux or when unreadable."""
    if not sys.platform.startswith("linux"):
        return set()
    try:
        text = CPUINFO.read_text(encoding="ascii", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())  # every core lists the same flags
    return set()


def int8_flags() -> tuple[str, ...]:
    """The :data:`INT8_FLAGS` this CPU has, strongest first; ``()`` off Linux or unreadable."""
    flags = _flags()
    return tuple(f for f in INT8_FLAGS if f in flags)


def bf16_flags() -> tuple[str, ...]:
    """The :data:`BF16_FLAGS` this CPU has, strongest first; ``()`` off Linux or unreadable."""
    flags = _flags()
    return tuple(f for f in BF16_FLAGS if f in flags)
