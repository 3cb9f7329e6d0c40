"""Writing a report's timeline files in a child process (``python -m mesolive.gui.report_child``).

The export worker is a thread of the app, and a thread shares the app's GIL
with the GUI thread. Writing ``timeline.json``, ``timeline.csv`` and
``timeline.png`` for a ten-minute session is several seconds of Python and
of matplotlib, which holds the GIL for each line it draws (600 ms for one of
18,000 points): the window froze while a report was written "in the
background", and the first export also loaded matplotlib into the app for
good (about 60 MB). So the worker hands the
:class:`~mesolive.gui.report.ReportSnapshot` to a child process, which
lowers its own priority (the window keeps the CPU on a busy machine),
writes the three files into the folder the worker made, and names them on
its stdout. The worker only waits.

The snapshot travels pickled on the child's stdin: it comes from this app
alone (the child reads nothing else), and it is plain frozen dataclasses
and NumPy arrays.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mesolive.gui.report import ReportSnapshot

#: Seconds the child may take (a cold start imports matplotlib, slow on a busy disk).
TIMEOUT_S = 300.0
#: Niceness the child adds to its own.
NICE = 10


def write_in_child(folder: Path, snap: ReportSnapshot) -> dict[str, Path]:
    """Write the timeline files of ``snap`` into ``folder`` (it exists) from a child process.

    Returns each key's path, as :func:`mesolive.gui.report.write_timeline`
    does (it runs in the child).

    Raises
    ------
    OSError
        The child could not start, failed (with the last line it wrote on
        stderr: which file, and why) or took longer than :data:`TIMEOUT_S`.
    """
    cmd = [sys.executable, "-m", "mesolive.gui.report_child", str(folder)]
    data = pickle.dumps(snap, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        proc = subprocess.run(cmd, input=data, capture_output=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise OSError(f"writing the timeline files took over {TIMEOUT_S:.0f} s") from e
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        raise OSError(lines[-1] if lines else f"exit status {proc.returncode}")
    return {key: Path(path) for key, path in json.loads(proc.stdout).items()}


def main(argv: list[str] | None = None) -> int:
    """The child: a pickled snapshot on stdin, the folder as the argument, the paths on stdout."""
    from mesolive.errors import MesoliveError
    from mesolive.gui.report import write_timeline

    (folder,) = sys.argv[1:] if argv is None else argv
    if hasattr(os, "nice"):
        try:
            os.nice(NICE)
        except OSError:
            pass  # not allowed here: write at the parent's priority
    snap = pickle.load(sys.stdin.buffer)
    try:
        out = write_timeline(Path(folder), snap)
    except (OSError, MesoliveError) as e:
        sys.stderr.write(f"{e}\n")  # the parent's message: one line, naming the file
        return 1
    sys.stdout.write(json.dumps({key: str(path) for key, path in out.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
