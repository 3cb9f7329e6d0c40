"""The C heap of a long-running process: glibc's malloc arenas capped at two.

glibc lets a thread that finds the heap's lock taken open an arena of its own
(up to eight per core) and keeps what is freed in each arena for reuse there.
The app and a live ``scan`` allocate and free large buffers in several
threads on every frame (the 720p frame, its QImages, the view's scaled copy:
about 22 MB a frame over 1 MB each), and the freed memory kept across many
arenas grew without end: resident memory +13 to +15 MB a minute in a
3-minute app run on the looping 6-face clip with recording on, while the
bytes in use stayed level. With two arenas it stayed level (-0.5 MB a
minute) at the same CPU time and 15 % more minor page faults; a fixed mmap
threshold (1-4 MB) only slowed the growth and cost 1.4-2.6x the kernel time
(``bench/gui.py`` reports the heap's figures; ``MALLOC_ARENA_MAX=16`` runs it
with glibc's own limit on a 2-core machine).

The cap holds only for arenas made after it, so it is set before any other
thread exists: first thing in :func:`mesolive.cli.main`, for the verbs that
run for hours. A user's own limit wins (``MALLOC_ARENA_MAX``, or
``glibc.malloc.arena_max`` in ``GLIBC_TUNABLES``). Elsewhere than glibc
(macOS, Windows, musl) nothing is done.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_ARENA_MAX = -8
"""``mallopt``'s parameter for the most arenas (glibc's ``malloc.h``)."""

ARENAS = 2


def cap_arenas() -> None:
    """Cap glibc's malloc arenas at :data:`ARENAS` (module docstring)."""
    if not sys.platform.startswith("linux"):
        return
    if "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return  # the user's own limit
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    mallopt(M_ARENA_MAX, ARENAS)  # 0 where refused: nothing else to do
