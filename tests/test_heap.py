"""glibc's malloc arenas are capped in the processes that run for hours (mesolive.heap).

Each check runs a verb in a fresh Python process, then eight threads that
allocate at once, and counts the process's arenas as glibc's own
``malloc_info`` lists them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc's arenas (Linux)"
)

RUN_THEN_COUNT = """
import ctypes, sys, tempfile, threading
from mesolive.cli import main

status = main(sys.argv[1:]) if sys.argv[1:] else 0  # none: Python's own heap, for a baseline
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def churn():
    for _ in range(20000):
        libc.free(libc.malloc(4096))

threads = [threading.Thread(target=churn) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc.fopen.restype, libc.fopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
with tempfile.NamedTemporaryFile(suffix=".xml") as f:
    fp = libc.fopen(f.name.encode(), b"w")
    libc.malloc_info(0, fp)
    libc.fclose(fp)
    print(status, open(f.name).read().count("<heap nr="))
"""


def arenas_after(*argv: str, env: dict[str, str] | None = None) -> int:
    """Arenas of a process that ran ``mesolive ARGV`` (if any) and then allocated in eight
    threads."""
    base = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    proc = subprocess.run(
        [sys.executable, "-c", RUN_THEN_COUNT, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env={**base, **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr
    status, arenas = proc.stdout.split()[-2:]
    assert status == "0", proc.stdout + proc.stderr
    return int(arenas)


def test_a_scan_caps_the_arenas_and_a_short_verb_does_not(shared: Path) -> None:
    """The app and a live scan freed 22 MB a frame across up to 8 arenas a core; the freed
    memory kept grew without end (resident memory +13-15 MB a minute)."""
    if arenas_after() <= 2:
        pytest.skip("this machine's threads never contend for the heap")
    photo = str(shared / "samples" / "faces" / "real" / "real00240.jpg")
    assert arenas_after("classify", photo) > 2  # a verb of seconds keeps glibc's own limit
    assert arenas_after("scan", photo) <= 2
    # a user's own limit wins, and only a limit does
    assert arenas_after("scan", photo, env={"MALLOC_ARENA_MAX": "8"}) > 2
    assert arenas_after("scan", photo, env={"GLIBC_TUNABLES": "glibc.malloc.arena_max=8"}) > 2
    assert arenas_after("scan", photo, env={"GLIBC_TUNABLES": "glibc.malloc.tcache_count=7"}) <= 2
