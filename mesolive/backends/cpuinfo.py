"""Whether this CPU multiplies 8-bit integers natively (VNNI or AMX).

ONNX Runtime's integer convolutions (the ``QLinearConv`` an INT8 Q/DQ graph
becomes) use VNNI's ``VPDPBUSD`` or AMX tiles where the processor has them;
without them they fall back to ``VPMADDUBSW``, which is slower and can
saturate (ONNX Runtime docs, *Quantize ONNX models*, "When and why do I need
to try U8U8?"). mesolive therefore runs INT8 only where one of
:data:`INT8_FLAGS` is present. The flags are read from ``/proc/cpuinfo`` on
Linux; elsewhere none are assumed.
"""

from __future__ import annotations

import sys
from pathlib import Path

PRECISIONS = ("auto", "fp32", "int8")
"""``--precision``: the graph ONNX Runtime runs on the CPU (:mod:`mesolive.models.int8_cpu`)."""

INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")
"""Linux cpuinfo flags of native INT8 dot products, strongest first."""

CPUINFO = Path("/proc/cpuinfo")


def int8_flags() -> tuple[str, ...]:
    """The :data:`INT8_FLAGS` this CPU has, strongest first; ``()`` off Linux or unreadable."""
    if not sys.platform.startswith("linux"):
        return ()
    try:
        text = CPUINFO.read_text(encoding="ascii", errors="replace")
    except OSError:
        return ()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
            break  # every core lists the same flags
    return tuple(f for f in INT8_FLAGS if f in flags)
